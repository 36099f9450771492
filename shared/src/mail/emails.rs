//! The emails Caseport writes: a temporary password, a staff member's welcome, a reset link.
//! Each names the clinic and the portal and carries nothing else about the client.

use zeroize::Zeroizing;

use super::{MailSettings, Message};
use crate::domain::{AccountKind, Email, Password};

/// `j***@hotmail.com`: enough for the case manager to recognise the address.
pub fn masked(email: &Email) -> String {
    let (local, domain) = email.as_ref().split_once('@').unwrap_or(("", ""));
    let first: String = local.chars().take(1).collect();
    format!("{first}***@{domain}")
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An instant as a person reads it in the clinic's time zone.
pub fn human_time(at: jiff::Timestamp, tz: &jiff::tz::TimeZone) -> String {
    at.to_zoned(tz.clone())
        .strftime("%A, %B %-d, %Y at %-I:%M %p %Z")
        .to_string()
}

fn wrap_html(settings: &MailSettings, paragraphs: &[String]) -> Zeroizing<String> {
    let mut html = String::from(
        "<!doctype html><html><body style=\"font-family:Arial,Helvetica,sans-serif;color:#1b1b1b;line-height:1.5\">",
    );
    html.push_str(&format!(
        "<h1 style=\"font-size:20px\">{}</h1>",
        html_escape(&settings.clinic_name)
    ));
    for p in paragraphs {
        html.push_str(p);
    }
    html.push_str("</body></html>");
    Zeroizing::new(html)
}

/// The email with a new temporary password. It names the clinic, the portal, the username,
/// the password on a line of its own and its expiry — and nothing else about the client.
pub fn temporary_password_email(
    settings: &MailSettings,
    to: &Email,
    username: &str,
    password: &Password,
    expires: &str,
    delivery_id: &str,
) -> Message {
    let clinic = &settings.clinic_name;
    let url = settings.sign_in_url();
    let text = format!(
        "Hello,\n\n{clinic} has set a new temporary password for your client portal account.\n\n\
         Sign in at: {url}\nUsername: {username}\nTemporary password: {}\n\n\
         It works until {expires}. When you sign in, you will choose a new password of your own.\n\n\
         If you did not ask for this, contact {clinic}. Nobody from {clinic} will ask you for your password.\n",
        password.expose()
    );
    let e = html_escape;
    let html = wrap_html(
        settings,
        &[
            format!(
                "<p>Hello,</p><p>{} has set a new temporary password for your client portal account.</p>",
                e(clinic)
            ),
            format!(
                "<p>Sign in at: <a href=\"{0}\">{0}</a><br>Username: <strong>{1}</strong><br>Temporary password: <strong style=\"font-family:monospace;font-size:18px\">{2}</strong></p>",
                e(&url),
                e(username),
                e(password.expose())
            ),
            format!(
                "<p>It works until {}. When you sign in, you will choose a new password of your own.</p><p>If you did not ask for this, contact {}. Nobody from {} will ask you for your password.</p>",
                e(expires),
                e(clinic),
                e(clinic)
            ),
        ],
    );
    Message {
        to: to.clone(),
        subject: format!("Your new temporary password for {clinic}"),
        text: Zeroizing::new(text),
        html,
        delivery_id: delivery_id.to_string(),
    }
}

/// The email that gives a staff member a temporary password for the staff console: a new
/// account's first, or one an administrator reset (`reset`).
pub fn staff_welcome_email(
    settings: &MailSettings,
    to: &Email,
    name: &str,
    password: &Password,
    expires: &str,
    delivery_id: &str,
    reset: bool,
) -> Message {
    let clinic = &settings.clinic_name;
    let url = format!("{}/staff/", settings.portal_url);
    let what = if reset {
        "has reset the password of your Caseport staff account. Your old password no longer works"
    } else {
        "has given you a Caseport staff account"
    };
    let text = format!(
        "Hello {name},\n\nAn administrator of {clinic} {what}.\n\n\
         Sign in at: {url}\nUsername: {to}\nTemporary password: {}\n\n\
         It works until {expires}. When you sign in, you will choose a password of your own.\n",
        password.expose(),
        to = to.as_ref()
    );
    let e = html_escape;
    let html = wrap_html(
        settings,
        &[
            format!(
                "<p>Hello {},</p><p>An administrator of {} {what}.</p>",
                e(name),
                e(clinic)
            ),
            format!(
                "<p>Sign in at: <a href=\"{0}\">{0}</a><br>Username: <strong>{1}</strong><br>Temporary password: <strong style=\"font-family:monospace;font-size:18px\">{2}</strong></p>",
                e(&url),
                e(to.as_ref()),
                e(password.expose())
            ),
            format!(
                "<p>It works until {}. When you sign in, you will choose a password of your own.</p>",
                e(expires)
            ),
        ],
    );
    Message {
        to: to.clone(),
        subject: if reset {
            format!("Your Caseport staff password at {clinic} was reset")
        } else {
            format!("Your Caseport staff account at {clinic}")
        },
        text: Zeroizing::new(text),
        html,
        delivery_id: delivery_id.to_string(),
    }
}

/// The email that tells an address it is no longer the portal account's: the clinic, when,
/// and the new address masked (`None`: removed). No password, nothing about the client.
pub fn email_changed_email(
    settings: &MailSettings,
    to: &Email,
    new_masked: Option<&str>,
    when: &str,
    delivery_id: &str,
) -> Message {
    let clinic = &settings.clinic_name;
    let change = match new_masked {
        Some(new) => format!("was changed to {new}"),
        None => "was removed".to_string(),
    };
    let text = format!(
        "Hello,\n\nThe email address of a {clinic} client portal account {change} on {when}. \
         This address ({to}) will no longer get the portal's emails, such as temporary passwords and reset links.\n\n\
         If you did not ask for this, call {clinic} right away.\n",
        to = to.as_ref()
    );
    let e = html_escape;
    let html = wrap_html(
        settings,
        &[
            format!(
                "<p>Hello,</p><p>The email address of a {} client portal account {} on {}. This address ({}) will no longer get the portal's emails, such as temporary passwords and reset links.</p>",
                e(clinic),
                e(&change),
                e(when),
                e(to.as_ref())
            ),
            format!(
                "<p>If you did not ask for this, call {} right away.</p>",
                e(clinic)
            ),
        ],
    );
    Message {
        to: to.clone(),
        subject: format!("The email of your {clinic} portal account was changed"),
        text: Zeroizing::new(text),
        html,
        delivery_id: delivery_id.to_string(),
    }
}

/// The email with a link to choose a new password (forgot password).
pub fn reset_link_email(
    settings: &MailSettings,
    kind: AccountKind,
    to: &Email,
    username: &str,
    token: &str,
    minutes: i64,
    delivery_id: &str,
) -> Message {
    let clinic = &settings.clinic_name;
    // The token travels in the fragment, which browsers never send to a server.
    let (page, account, subject) = match kind {
        AccountKind::Client => (
            "/portal/reset.html",
            format!("the {clinic} client portal account"),
            format!("Reset your {clinic} portal password"),
        ),
        AccountKind::Staff => (
            "/staff/reset.html",
            format!("the {clinic} Caseport staff account"),
            format!("Reset your {clinic} Caseport staff password"),
        ),
    };
    let link = format!("{}{page}#token={token}", settings.portal_url);
    let text = format!(
        "Hello,\n\nSomeone asked to reset the password of {account} {username}.\n\n\
         Choose a new password here (the link works once, for {minutes} minutes):\n{link}\n\n\
         If you did not ask for this, ignore this email: your password has not changed.\n"
    );
    let e = html_escape;
    let html = wrap_html(
        settings,
        &[
            format!(
                "<p>Hello,</p><p>Someone asked to reset the password of {} <strong>{}</strong>.</p>",
                e(&account),
                e(username)
            ),
            format!(
                "<p><a href=\"{0}\">Choose a new password</a> (the link works once, for {minutes} minutes).</p><p>If the button does not work, copy this address into your browser:<br>{0}</p>",
                e(&link)
            ),
            "<p>If you did not ask for this, ignore this email: your password has not changed.</p>"
                .to_string(),
        ],
    );
    Message {
        to: to.clone(),
        subject,
        text: Zeroizing::new(text),
        html,
        delivery_id: delivery_id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mail::Provider;
    use crate::mail::testing::settings;

    #[test]
    fn the_email_has_the_password_on_its_own_line_and_escapes_html() {
        let mut s = settings(Provider::Postmark);
        s.clinic_name = "Smith & <Sons>".into();
        let m = temporary_password_email(
            &s,
            &Email::parse("a@b.example").unwrap(),
            "a@b.example",
            &Password::new("ABC234-DEF567-GHJ89K".into()),
            "Saturday",
            "d",
        );
        assert!(
            m.text
                .lines()
                .any(|l| l == "Temporary password: ABC234-DEF567-GHJ89K")
        );
        assert!(m.html.contains("Smith &amp; &lt;Sons&gt;"));
        assert!(!m.html.contains("<Sons>"));
    }
}
