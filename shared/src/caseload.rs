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

/// The ORDER BY of a sort; ties broken by id so pages never overlap.
fn order_by(sort: Sort, descending: bool) -> String {
    let dir = if descending { "DESC" } else { "ASC" };
    let flip = if descending { "ASC" } else { "DESC" };
    match sort {
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
    }
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
    // "Doe, Ja" searches last names starting Doe and first names starting Ja; one word
    // either name. Prefixes are index ranges (LIKE with ESCAPE would scan every row).
    if !query.q.is_empty() {
        let range = |column: &str, prefix: &str, params: &mut Vec<Value>| {
            params.push(prefix.into());
            params.push(format!("{prefix}\u{10FFFF}").into());
            format!("(c.{column} COLLATE NOCASE >= ? AND c.{column} COLLATE NOCASE < ?)")
        };
        match query.q.split_once(',') {
            Some((last, first)) => {
                let l = range("last_name", last.trim(), &mut params);
                let f = range("first_name", first.trim(), &mut params);
                filter.push_str(&format!(" AND {l} AND {f}"));
            }
            None => {
                let l = range("last_name", &query.q, &mut params);
                let f = range("first_name", &query.q, &mut params);
                filter.push_str(&format!(" AND ({l} OR {f})"));
            }
        }
    }
    let counted = if query.all && query.q.is_empty() {
        // Every client: the maintained count, not a scan.
        ctx.db
            .execute("SELECT value FROM counters WHERE name = 'clients'", &[])?
    } else {
        ctx.db
            .execute(&format!("SELECT count(*) {from} {filter}"), &params)?
    };
    let total = counted.first().and_then(|r| r.int(0)).unwrap_or(0);
    // SQLite walks `offset` index entries to reach a page, so a page past the middle is read
    // from the other end in reverse: the last page costs what the first does.
    let from_end = query.offset > total / 2 && query.offset < total;
    let (descending, offset, limit) = if from_end {
        let end = (query.offset + query.limit).min(total);
        (!query.descending, total - end, end - query.offset)
    } else {
        (query.descending, query.offset, query.limit)
    };
    let mut page_params = params.clone();
    page_params.push(limit.into());
    page_params.push(offset.into());
    let mut rows = ctx.db.execute(
        &format!(
            "SELECT c.id, c.first_name, c.last_name, c.dob, a.role, a.date_assigned,
                    (SELECT CASE WHEN cr.must_change = 1 THEN 'password_reset_required' ELSE 'active' END
                     FROM credentials cr WHERE cr.owner_kind = 'client' AND cr.owner_id = c.id)
             {from} {filter} ORDER BY {} LIMIT ? OFFSET ?",
            order_by(query.sort, descending)
        ),
        &page_params,
    )?;
    if from_end {
        rows.rows.reverse();
    }
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
    fn pages_read_from_either_end_join_up_to_the_whole_list() {
        use crate::native::{NativeDb, NativeKv};
        use crate::ports::{Db, SystemClock};
        let db = NativeDb::in_memory().unwrap();
        crate::schema::migrate(&db).unwrap();
        crate::demo::load_if_empty(&db, &SystemClock).unwrap();
        for i in 0..17 {
            db.execute(
                "INSERT INTO clients (first_name, last_name, dob, created_at) VALUES (?, 'Same', ?, 'x')",
                &[format!("F{}", i % 5).into(), format!("20{:02}-01-0{}", 10 + i % 3, 1 + i % 4).into()],
            )
            .unwrap();
        }
        let kv = NativeKv::in_memory().unwrap();
        let settings = crate::settings::Settings::default();
        let ctx = Ctx {
            db: &db,
            kv: &kv,
            clock: &SystemClock,
            settings: &settings,
        };
        let admin = Account {
            kind: crate::domain::AccountKind::Staff,
            id: 3,
        };
        let today: Date = "2026-11-25".parse().unwrap();
        for sort in ["name", "dob", "age", "role", "date_assigned"] {
            for dir in ["asc", "desc"] {
                let ids = |offset: i64, limit: i64| -> Vec<i64> {
                    let q = Query::parse(&format!(
                        "scope=all&sort={sort}&dir={dir}&offset={offset}&limit={limit}"
                    ))
                    .unwrap();
                    list(&ctx, admin, Role::Admin, &q, today)
                        .unwrap()
                        .rows
                        .iter()
                        .map(|r| r.client_id)
                        .collect()
                };
                let whole = ids(0, 100);
                assert_eq!(whole.len(), 24);
                let mut paged = Vec::new();
                let mut offset = 0;
                while offset < 24 {
                    paged.extend(ids(offset, 5));
                    offset += 5;
                }
                assert_eq!(paged, whole, "sort={sort} dir={dir}");
                assert!(ids(24, 5).is_empty());
            }
        }
    }
}
