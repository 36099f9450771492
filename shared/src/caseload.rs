//! My Caseload: the signed-in staff member's clients with the help page's columns, search,
//! sorting by every column and paging; Show All Clients for administrators; Add Client.

use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api_error::ApiError;
use crate::audit;
use crate::auth::Ctx;
use crate::clients::{self, age};
use crate::domain::{Account, Role};
use crate::ports::{Value, transaction};

/// The largest page.
pub const MAX_LIMIT: i64 = 100;

/// `GET /api/caseload` query parameters, parsed.
#[derive(Debug, PartialEq)]
pub struct Query {
    pub all: bool,
    pub q: String,
    pub sort: Sort,
    pub descending: bool,
    pub offset: i64,
    pub limit: i64,
}

/// The sortable columns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sort {
    Name,
    Dob,
    Age,
    Role,
    DateAssigned,
}

impl Query {
    /// Parses a query string such as `scope=mine&q=doe&sort=dob&dir=desc&offset=0&limit=25`.
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let mut out = Query {
            all: false,
            q: String::new(),
            sort: Sort::Name,
            descending: false,
            offset: 0,
            limit: 25,
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let key = key.as_ref();
            let number = |field: &str, min: i64, max: i64| -> Result<i64, ApiError> {
                value
                    .parse::<i64>()
                    .ok()
                    .filter(|n| (min..=max).contains(n))
                    .ok_or_else(|| {
                        ApiError::invalid(
                            field,
                            format!("{field} must be a whole number from {min} to {max}."),
                        )
                    })
            };
            match key {
                "scope" => {
                    out.all = match value.as_ref() {
                        "mine" => false,
                        "all" => true,
                        _ => return Err(ApiError::invalid("scope", "scope is mine or all.")),
                    }
                }
                "q" => {
                    if value.chars().count() > 200 {
                        return Err(ApiError::invalid(
                            "q",
                            "Search with at most 200 characters.",
                        ));
                    }
                    out.q = value.trim().to_string();
                }
                "sort" => {
                    out.sort = match value.as_ref() {
                        "name" => Sort::Name,
                        "dob" => Sort::Dob,
                        "age" => Sort::Age,
                        "role" => Sort::Role,
                        "date_assigned" => Sort::DateAssigned,
                        _ => {
                            return Err(ApiError::invalid(
                                "sort",
                                "sort is one of name, dob, age, role, date_assigned.",
                            ));
                        }
                    }
                }
                "dir" => {
                    out.descending = match value.as_ref() {
                        "asc" => false,
                        "desc" => true,
                        _ => return Err(ApiError::invalid("dir", "dir is asc or desc.")),
                    }
                }
                "offset" => out.offset = number("offset", 0, 1_000_000_000)?,
                "limit" => out.limit = number("limit", 1, MAX_LIMIT)?,
                other => {
                    return Err(ApiError::invalid(
                        other,
                        format!("{other} is not a parameter of this request."),
                    ));
                }
            }
        }
        Ok(out)
    }
}

/// One row of the caseload table.
#[derive(Debug, Serialize)]
pub struct Row {
    pub client_id: i64,
    pub name: String,
    pub first_name: String,
    pub last_name: String,
    pub dob: String,
    pub age: i16,
    pub role: Option<&'static str>,
    pub role_label: Option<&'static str>,
    pub date_assigned: Option<String>,
    pub portal_status: &'static str,
}

/// A page of the caseload.
#[derive(Debug, Serialize)]
pub struct Page {
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
    pub rows: Vec<Row>,
}

fn role_of(s: Option<&str>) -> Option<(&'static str, &'static str)> {
    match s? {
        "primary_case_manager" => Some(("primary_case_manager", "Primary Case Manager")),
        "support_primary_staff" => Some(("support_primary_staff", "Support Primary Staff")),
        _ => None,
    }
}

/// Escapes `%`, `_` and `\` for a LIKE pattern.
fn like_prefix(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Lists a page of the caller's caseload (or every client, for administrators).
pub fn list(
    ctx: &Ctx<'_>,
    staff: Account,
    role: Role,
    query: &Query,
    today: Date,
) -> Result<Page, ApiError> {
    if query.all && role != Role::Admin {
        return Err(ApiError::new(
            403,
            "forbidden",
            "Show All Clients is for administrators.",
        ));
    }
    // Every client (LEFT JOIN) or only the caller's (JOIN); the caller's role toward each.
    let from = if query.all {
        "FROM clients c LEFT JOIN caseload_assignments a ON a.client_id = c.id AND a.staff_id = ?"
    } else {
        "FROM caseload_assignments a JOIN clients c ON c.id = a.client_id AND a.staff_id = ?"
    };
    let mut params: Vec<Value> = vec![staff.id.into()];
    let mut filter = String::from("WHERE 1 = 1");
    // "Doe, Ja" searches last name Doe* and first name Ja*; a single word either name.
    if !query.q.is_empty() {
        match query.q.split_once(',') {
            Some((last, first)) => {
                filter.push_str(
                    " AND c.last_name LIKE ? ESCAPE '\\' AND c.first_name LIKE ? ESCAPE '\\'",
                );
                params.push(like_prefix(last.trim()).into());
                params.push(like_prefix(first.trim()).into());
            }
            None => {
                filter.push_str(
                    " AND (c.last_name LIKE ? ESCAPE '\\' OR c.first_name LIKE ? ESCAPE '\\')",
                );
                params.push(like_prefix(&query.q).into());
                params.push(like_prefix(&query.q).into());
            }
        }
    }
    let total = ctx
        .db
        .execute(&format!("SELECT count(*) {from} {filter}"), &params)?
        .first()
        .and_then(|r| r.int(0))
        .unwrap_or(0);
    let dir = if query.descending { "DESC" } else { "ASC" };
    let flip = if query.descending { "ASC" } else { "DESC" };
    let order = match query.sort {
        Sort::Name => format!(
            "c.last_name COLLATE NOCASE {dir}, c.first_name COLLATE NOCASE {dir}, c.id {dir}"
        ),
        Sort::Dob => format!("c.dob {dir}, c.id {dir}"),
        // Older means an earlier date of birth.
        Sort::Age => format!("c.dob {flip}, c.id {dir}"),
        Sort::Role => format!("a.role {dir}, c.last_name COLLATE NOCASE {dir}, c.id {dir}"),
        Sort::DateAssigned => {
            format!("a.date_assigned {dir}, c.last_name COLLATE NOCASE {dir}, c.id {dir}")
        }
    };
    let mut page_params = params.clone();
    page_params.push(query.limit.into());
    page_params.push(query.offset.into());
    let rows = ctx.db.execute(
        &format!(
            "SELECT c.id, c.first_name, c.last_name, c.dob, a.role, a.date_assigned,
                    (SELECT CASE WHEN cr.must_change = 1 THEN 'password_reset_required' ELSE 'active' END
                     FROM credentials cr WHERE cr.owner_kind = 'client' AND cr.owner_id = c.id)
             {from} {filter} ORDER BY {order} LIMIT ? OFFSET ?"
        ),
        &page_params,
    )?;
    let rows = rows
        .iter()
        .map(|r| {
            let dob_text = r.string(3)?;
            let dob: Date = dob_text
                .parse()
                .map_err(|_| crate::ports::StorageError(format!("bad dob {dob_text}")))?;
            let (role, role_label) =
                role_of(r.text(4)).map_or((None, None), |(a, b)| (Some(a), Some(b)));
            let first = r.string(1)?;
            let last = r.string(2)?;
            Ok(Row {
                client_id: r.int(0).unwrap_or_default(),
                name: format!("{last}, {first}"),
                first_name: first,
                last_name: last,
                dob: dob_text,
                age: age(dob, today),
                role,
                role_label,
                date_assigned: r.text(5).map(str::to_string),
                portal_status: match r.text(6) {
                    None => "none",
                    Some("password_reset_required") => "password_reset_required",
                    Some(_) => "active",
                },
            })
        })
        .collect::<Result<Vec<_>, crate::ports::StorageError>>()?;
    Ok(Page {
        total,
        offset: query.offset,
        limit: query.limit,
        rows,
    })
}

/// `POST /api/clients`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewClient {
    pub first_name: String,
    #[serde(default)]
    pub middle_name: Option<String>,
    pub last_name: String,
    pub dob: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
}

/// Adds a client, assigned to the caller as Primary Case Manager; answers its id.
pub fn add_client(
    ctx: &Ctx<'_>,
    staff: Account,
    new: &NewClient,
    today: Date,
) -> Result<i64, ApiError> {
    let first = clients::parse_name("first_name", &new.first_name, true)?;
    let middle = clients::parse_name(
        "middle_name",
        new.middle_name.as_deref().unwrap_or(""),
        false,
    )?;
    let last = clients::parse_name("last_name", &new.last_name, true)?;
    let dob = clients::parse_dob(&new.dob, today)?;
    let email = clients::parse_optional_email(new.email.as_deref().unwrap_or(""))?;
    let phone = clients::parse_phone(new.phone.as_deref().unwrap_or(""))?;
    let now = ctx.clock.now().to_string();
    let label = staff.label();
    transaction(ctx.db, || {
        let id = ctx
            .db
            .execute(
                "INSERT INTO clients (first_name, middle_name, last_name, dob, email, phone, created_at)
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                &[
                    first.as_str().into(),
                    middle.as_str().into(),
                    last.as_str().into(),
                    dob.to_string().into(),
                    email.as_ref().map(|e| e.to_string()).into(),
                    phone.clone().into(),
                    now.as_str().into(),
                ],
            )?
            .first()
            .and_then(|r| r.int(0))
            .ok_or_else(ApiError::internal)?;
        ctx.db.execute(
            "INSERT INTO caseload_assignments (staff_id, client_id, role, date_assigned) VALUES (?, ?, 'primary_case_manager', ?)",
            &[staff.id.into(), id.into(), today.to_string().into()],
        )?;
        let subject = format!("client:{id}");
        audit::record(
            ctx.db,
            ctx.clock,
            &label,
            "client_added",
            Some(&subject),
            json!({ "name": format!("{last}, {first}"), "dob": dob.to_string(), "email": email.as_ref().map(|e| e.to_string()) }),
        )?;
        Ok::<_, ApiError>(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_query_parses() {
        let q =
            Query::parse("scope=all&q=Doe%2C+Ja&sort=date_assigned&dir=desc&offset=25&limit=50")
                .unwrap();
        assert_eq!(
            q,
            Query {
                all: true,
                q: "Doe, Ja".into(),
                sort: Sort::DateAssigned,
                descending: true,
                offset: 25,
                limit: 50
            }
        );
        assert_eq!(Query::parse("").unwrap().limit, 25);
    }

    #[test]
    fn bad_parameters_name_the_field() {
        for (query, field) in [
            ("scope=everyone", "scope"),
            ("sort=height", "sort"),
            ("dir=up", "dir"),
            ("limit=0", "limit"),
            ("limit=101", "limit"),
            ("offset=-1", "offset"),
            ("page=2", "page"),
        ] {
            assert_eq!(
                Query::parse(query).unwrap_err().field.as_deref(),
                Some(field),
                "{query}"
            );
        }
    }

    #[test]
    fn like_patterns_are_escaped() {
        assert_eq!(like_prefix("50%_a\\"), "50\\%\\_a\\\\%");
    }
}
