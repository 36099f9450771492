//! My Caseload: the signed-in staff member's clients with the help page's columns, search,
//! sorting by every column and paging; Show All Clients for administrators; Add Client.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::api_error::{ApiError, Code};
use crate::audit;
use crate::clients::{self, age};
use crate::ctx::Ctx;
use crate::domain::{Account, Role};
use crate::names::{self, Search};
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
    /// A keyset cursor (a page's `next`): the page starts after that row, whatever the
    /// offset; `offset` then only says where the page is, for "Showing 26 to 50".
    pub after: Option<String>,
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
            after: None,
        };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let key = key.as_ref();
            let number = |field: &str, min: i64, max: i64| {
                crate::request::whole_number(field, &value, min, max)
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
                "after" => out.after = Some(value.into_owned()).filter(|v| !v.is_empty()),
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
    /// Who manages the client (Show All Clients only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub case_managers: Option<Vec<clients::CaseManager>>,
    /// The names' sort keys (`names::Keys`), for the page cursor.
    #[serde(skip)]
    last_key: String,
    #[serde(skip)]
    first_key: String,
}

/// A page of the caseload.
#[derive(Debug, Serialize)]
pub struct Page {
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
    pub rows: Vec<Row>,
    /// The cursor for the next page (pass it as `after`), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// The columns a sort orders by, all in one direction, ending in the id so that no two rows
/// tie and a page's last row says exactly where the next begins.
fn key_columns(sort: Sort) -> &'static [&'static str] {
    match sort {
        Sort::Name => &["c.last_key", "c.first_key", "c.id"],
        Sort::Dob | Sort::Age => &["c.dob", "c.id"],
        Sort::Role => &["coalesce(a.role, '')", "c.last_key", "c.id"],
        Sort::DateAssigned => &["coalesce(a.date_assigned, '')", "c.last_key", "c.id"],
    }
}

/// Whether the key columns run descending: older means an earlier date of birth.
fn key_descending(sort: Sort, descending: bool) -> bool {
    if sort == Sort::Age {
        !descending
    } else {
        descending
    }
}

fn order_by(sort: Sort, descending: bool) -> String {
    let dir = if key_descending(sort, descending) {
        "DESC"
    } else {
        "ASC"
    };
    key_columns(sort)
        .iter()
        .map(|c| format!("{c} {dir}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn sort_name(sort: Sort) -> &'static str {
    match sort {
        Sort::Name => "name",
        Sort::Dob => "dob",
        Sort::Age => "age",
        Sort::Role => "role",
        Sort::DateAssigned => "date_assigned",
    }
}

/// A row's sort key, as a cursor: base64url of `[sort, dir, key…]`.
fn cursor_after(row: &Row, query: &Query) -> String {
    let key: Vec<serde_json::Value> = match query.sort {
        Sort::Name => vec![
            json!(row.last_key),
            json!(row.first_key),
            json!(row.client_id),
        ],
        Sort::Dob | Sort::Age => vec![json!(row.dob), json!(row.client_id)],
        Sort::Role => vec![
            json!(row.role.unwrap_or("")),
            json!(row.last_key),
            json!(row.client_id),
        ],
        Sort::DateAssigned => vec![
            json!(row.date_assigned.clone().unwrap_or_default()),
            json!(row.last_key),
            json!(row.client_id),
        ],
    };
    let dir = if query.descending { "desc" } else { "asc" };
    let mut all = vec![json!(sort_name(query.sort)), json!(dir)];
    all.extend(key);
    URL_SAFE_NO_PAD.encode(serde_json::Value::Array(all).to_string())
}

/// The key values of a cursor, checked against the query's sort.
fn cursor_key(cursor: &str, query: &Query) -> Result<Vec<Value>, ApiError> {
    let invalid = || {
        ApiError::invalid(
            "after",
            "This page cursor is not valid for this sort; start again from the first page.",
        )
    };
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| invalid())?;
    let parts: Vec<serde_json::Value> = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
    let dir = if query.descending { "desc" } else { "asc" };
    let columns = key_columns(query.sort).len();
    if parts.len() != columns + 2
        || parts[0] != json!(sort_name(query.sort))
        || parts[1] != json!(dir)
    {
        return Err(invalid());
    }
    parts[2..]
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            serde_json::Value::String(s) if i + 1 < columns => Ok(Value::Text(s.clone())),
            serde_json::Value::Number(n) if i + 1 == columns => {
                n.as_i64().map(Value::Integer).ok_or_else(invalid)
            }
            _ => Err(invalid()),
        })
        .collect()
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
            Code::Forbidden,
            "Show All Clients is for administrators.",
        ));
    }
    // Every client of the clinic (LEFT JOIN) or only the caller's (JOIN); the caller's role
    // toward each. The clinic is named where the plan starts: on the clients for every client
    // (and inside each name range, so that a search is a range on one index), on the
    // assignments for a caseload (which start from the caller's own rows; naming it on the
    // clients would make SQLite walk every client of the clinic in name order).
    let (from, mut filter, in_range) = if query.all {
        (
            "FROM clients c LEFT JOIN caseload_assignments a ON a.client_id = c.id AND a.staff_id = ?2",
            String::from("WHERE c.clinic_id = ?1"),
            "c.clinic_id = ?1 AND ",
        )
    } else {
        (
            "FROM caseload_assignments a JOIN clients c ON c.id = a.client_id AND a.staff_id = ?2",
            String::from("WHERE a.clinic_id = ?1"),
            "",
        )
    };
    let mut params: Vec<Value> = vec![staff.id.into()];
    // Searches by the names' keys (`names`): "Doe, Ja" asks for last names starting "doe" and
    // first names starting "ja"; words in any order ("jane doe", "doe jane") each start a word
    // of the name, and the first starts the first or the last name. Prefixes are index ranges
    // on the keys (LIKE with ESCAPE would scan every row); the other words only filter what
    // the first one found.
    let range = |column: &str, prefix: &str, params: &mut Vec<Value>| {
        params.push(prefix.into());
        params.push(format!("{prefix}\u{10FFFF}").into());
        format!("({in_range}c.{column} >= ? AND c.{column} < ?)")
    };
    match Search::parse(&query.q) {
        Search::Everything => {}
        Search::Nobody => filter.push_str(" AND 0"),
        Search::LastFirst { last, first } => {
            for (column, prefix) in [("last_key", last), ("first_key", first)] {
                if !prefix.is_empty() {
                    let r = range(column, &prefix, &mut params);
                    filter.push_str(&format!(" AND {r}"));
                }
            }
        }
        Search::Words(words) => {
            let l = range("last_key", &words[0], &mut params);
            let f = range("first_key", &words[0], &mut params).replacen(
                "c.clinic_id = ?1 AND",
                "c.clinic_id = ?1 + 0 AND",
                1,
            );
            // Each side of the OR is a range within the clinic on its own index (SQLite's
            // MULTI-INDEX OR). The clinic alone must not look like the better index: without
            // statistics SQLite takes an equality on an index's first column for a handful of
            // rows, and it factors a term both sides share out of the OR, so the top-level
            // check is `+` (no index) and the sides spell the clinic differently.
            filter = filter.replacen("WHERE c.clinic_id", "WHERE +c.clinic_id", 1);
            filter.push_str(&format!(" AND ({l} OR {f})"));
            for word in &words[1..] {
                params.push(format!(" {word}").into());
                filter.push_str(" AND instr(c.name_words, ?) > 0");
            }
        }
    }
    let counted = if query.all && query.q.is_empty() {
        // Every client: the maintained count, not a scan.
        ctx.db.execute(
            "SELECT value FROM counters WHERE name = 'clients/' || ?1",
            &[],
        )?
    } else {
        ctx.db
            .execute(&format!("SELECT count(*) {from} {filter}"), &params)?
    };
    let total = counted.first().and_then(|r| r.int(0)).unwrap_or(0);
    // With a cursor, the page starts right after it: an index seek, whatever the depth.
    // Without one, SQLite walks `offset` entries, so a page past the middle is read from the
    // other end in reverse: the last page costs what the first does.
    let after = query
        .after
        .as_deref()
        .map(|c| cursor_key(c, query))
        .transpose()?;
    let from_end = after.is_none() && query.offset > total / 2 && query.offset < total;
    let (descending, offset, limit) = if from_end {
        let end = (query.offset + query.limit).min(total);
        (!query.descending, total - end, end - query.offset)
    } else if after.is_some() {
        // One row more than asked tells whether a next page exists.
        (query.descending, 0, query.limit + 1)
    } else {
        (query.descending, query.offset, query.limit)
    };
    let mut page_params = params.clone();
    let mut seek = String::new();
    if let Some(key) = &after {
        let columns = key_columns(query.sort);
        let op = if key_descending(query.sort, query.descending) {
            "<"
        } else {
            ">"
        };
        // The row-value comparison alone is a filter over a scan (SQLite does not seek on it
        // when columns carry a collation); the leading-column bound makes it an index seek.
        seek = format!(
            " AND {} {op}= ? AND ({}) {op} ({})",
            columns[0],
            columns.join(", "),
            vec!["?"; columns.len()].join(", ")
        );
        page_params.push(key[0].clone());
        page_params.extend(key.iter().cloned());
    }
    // The page size is written into the statement, not bound: SQLite plans with a LIMIT's
    // value, so a bound one makes it parse the statement again on every request. Both are
    // integers the query parser checked.
    page_params.push(offset.into());
    let mut rows = ctx.db.execute(
        &format!(
            "SELECT c.id, c.first_name, c.last_name, c.dob, a.role, a.date_assigned,
                    (SELECT CASE WHEN cr.must_change = 1 THEN 'password_reset_required' ELSE 'active' END
                     FROM credentials cr WHERE cr.owner_kind = 'client' AND cr.owner_id = c.id),
                    c.last_key, c.first_key
             {from} {filter}{seek} ORDER BY {} LIMIT {limit} OFFSET ?",
            order_by(query.sort, descending)
        ),
        &page_params,
    )?;
    if from_end {
        rows.rows.reverse();
    }
    let more = if after.is_some() {
        let more = rows.rows.len() as i64 > query.limit;
        rows.rows.truncate(query.limit as usize);
        more
    } else {
        query.offset + query.limit < total
    };
    let rows = rows
        .iter()
        .map(|r| {
            let dob_text = r.string(3)?;
            let dob: Date = dob_text
                .parse()
                .map_err(|_| crate::ports::StorageError::new(format!("bad dob {dob_text}")))?;
            let (role, role_label) =
                clients::case_role(r.text(4)).map_or((None, None), |(a, b)| (Some(a), Some(b)));
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
                case_managers: None,
                last_key: r.string(7)?,
                first_key: r.string(8)?,
            })
        })
        .collect::<Result<Vec<_>, crate::ports::StorageError>>()?;
    // Show All Clients says who manages each client (one query for the page).
    let mut rows = rows;
    if query.all {
        let ids: Vec<i64> = rows.iter().map(|r| r.client_id).collect();
        let mut managers = clients::case_managers(ctx.db, &ids)?;
        for row in &mut rows {
            row.case_managers = Some(managers.remove(&row.client_id).unwrap_or_default());
        }
    }
    let next = rows
        .last()
        .filter(|_| more)
        .map(|last| cursor_after(last, query));
    Ok(Page {
        total,
        offset: query.offset,
        limit: query.limit,
        rows,
        next,
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
    /// Add it although a client with the same name, date of birth and email exists (the
    /// answer `possible_duplicate` asked first).
    #[serde(default)]
    pub confirm_duplicate: bool,
}

/// Adds a client, assigned to the caller as Primary Case Manager; answers its id.
pub fn add_client(
    ctx: &Ctx<'_>,
    staff: Account,
    new: &NewClient,
    today: Date,
) -> Result<i64, ApiError> {
    // Every problem at once, each with its field, so that the form can show them all.
    let first = clients::parse_name("first_name", &new.first_name, true);
    let middle = clients::parse_name(
        "middle_name",
        new.middle_name.as_deref().unwrap_or(""),
        false,
    );
    let last = clients::parse_name("last_name", &new.last_name, true);
    let dob = clients::parse_dob(&new.dob, today);
    let email = clients::parse_optional_email(new.email.as_deref().unwrap_or(""));
    let phone = clients::parse_phone(new.phone.as_deref().unwrap_or(""));
    if let Some(e) = ApiError::all([
        first.as_ref().err().cloned(),
        middle.as_ref().err().cloned(),
        last.as_ref().err().cloned(),
        dob.as_ref().err().cloned(),
        email.as_ref().err().cloned(),
        phone.as_ref().err().cloned(),
    ]) {
        return Err(e);
    }
    let (first, middle, last, dob, email, phone) = (first?, middle?, last?, dob?, email?, phone?);
    if !new.confirm_duplicate {
        let same = ctx.db.execute(
            "SELECT 1 FROM clients WHERE clinic_id = ?1 AND first_name = ? COLLATE NOCASE AND last_name = ? COLLATE NOCASE
             AND dob = ? AND coalesce(email, '') = ? COLLATE NOCASE LIMIT 1",
            &[
                first.as_str().into(),
                last.as_str().into(),
                dob.to_string().into(),
                email.as_ref().map_or(String::new(), |e| e.to_string()).into(),
            ],
        )?;
        if same.first().is_some() {
            return Err(ApiError::new(
                Code::PossibleDuplicate,
                format!(
                    "A client named {last}, {first}, born {}, with {} is already in Caseport. Add another one anyway?",
                    dob.strftime("%m/%d/%Y"),
                    email
                        .as_ref()
                        .map_or("no email".to_string(), |e| format!("the email {e}"))
                ),
            ));
        }
    }
    let now = ctx.clock.now().to_string();
    let label = staff.label();
    let keys = names::Keys::of(&first, &middle, &last);
    transaction(ctx.db, || {
        let id = ctx
            .db
            .execute(
                "INSERT INTO clients (clinic_id, first_name, middle_name, last_name, last_key, first_key, name_words, dob, email, phone, created_at)
                 VALUES (?1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                &[
                    first.as_str().into(),
                    middle.as_str().into(),
                    last.as_str().into(),
                    keys.last.as_str().into(),
                    keys.first.as_str().into(),
                    keys.words.as_str().into(),
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
            "INSERT INTO caseload_assignments (clinic_id, staff_id, client_id, role, date_assigned) VALUES (?1, ?, ?, 'primary_case_manager', ?)",
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
                limit: 50,
                after: None
            }
        );
        assert_eq!(Query::parse("").unwrap().limit, 25);
    }

    #[test]
    fn a_cursor_for_another_sort_is_refused() {
        let row = Row {
            client_id: 7,
            name: "Doe, Jane".into(),
            first_name: "Jane".into(),
            last_name: "Doe".into(),
            dob: "2013-02-19".into(),
            age: 13,
            role: None,
            role_label: None,
            date_assigned: None,
            portal_status: "none",
            case_managers: None,
            last_key: "doe".into(),
            first_key: "jane".into(),
        };
        let by_name = Query::parse("sort=name").unwrap();
        let cursor = cursor_after(&row, &by_name);
        assert_eq!(
            cursor_key(&cursor, &by_name).unwrap(),
            vec![
                Value::Text("doe".into()),
                Value::Text("jane".into()),
                Value::Integer(7)
            ]
        );
        for other in ["sort=dob", "sort=name&dir=desc"] {
            assert_eq!(
                cursor_key(&cursor, &Query::parse(other).unwrap())
                    .unwrap_err()
                    .field
                    .as_deref(),
                Some("after")
            );
        }
        assert!(cursor_key("not-a-cursor", &by_name).is_err());
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
            let first = format!("F{}", i % 5);
            let keys = names::Keys::of(&first, "", "Same");
            db.execute(
                "INSERT INTO clients (first_name, last_name, last_key, first_key, name_words, dob, created_at) VALUES (?, 'Same', ?, ?, ?, ?, 'x')",
                &[first.into(), keys.last.into(), keys.first.into(), keys.words.into(), format!("20{:02}-01-0{}", 10 + i % 3, 1 + i % 4).into()],
            )
            .unwrap();
        }
        let kv = NativeKv::in_memory().unwrap();
        let settings = crate::settings::Settings::default();
        let scoped = crate::clinics::Scoped::new(&db, crate::clinics::FIRST);
        let ctx = Ctx {
            db: &scoped,
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

                // Following `next` cursors gives the same rows, and ends without a cursor.
                let mut walked = Vec::new();
                let mut after = String::new();
                loop {
                    let q = Query::parse(&format!(
                        "scope=all&sort={sort}&dir={dir}&limit=5&after={after}"
                    ))
                    .unwrap();
                    let page = list(&ctx, admin, Role::Admin, &q, today).unwrap();
                    walked.extend(page.rows.iter().map(|r| r.client_id));
                    match page.next {
                        Some(next) => after = next,
                        None => break,
                    }
                }
                assert_eq!(walked, whole, "cursor walk, sort={sort} dir={dir}");
            }
        }
    }

    fn id_of(w: &crate::testing::World, first: &str) -> i64 {
        use crate::ports::Db;
        w.raw()
            .execute(
                "SELECT id FROM clients WHERE first_name = ?",
                &[first.into()],
            )
            .unwrap()
            .first()
            .and_then(|r| r.int(0))
            .unwrap()
    }

    #[test]
    fn search_and_sort_read_names_the_way_people_type_them() {
        use crate::testing::World;
        let w = World::new();
        let ctx = w.ctx();
        let admin = Account {
            kind: crate::domain::AccountKind::Staff,
            id: 3,
        };
        let today: Date = "2026-11-25".parse().unwrap();
        for (first, last) in [("Zoë", "Émoji-Test"), ("Kid", "New"), ("Seán", "O'Brien")] {
            let new = NewClient {
                first_name: first.into(),
                middle_name: None,
                last_name: last.into(),
                dob: "2015-03-04".into(),
                email: None,
                phone: None,
                confirm_duplicate: false,
            };
            add_client(&ctx, admin, &new, today).unwrap();
        }
        let names = |q: &str| -> Vec<String> {
            let query = Query::parse(&format!("scope=all&limit=100&{q}")).unwrap();
            list(&ctx, admin, Role::Admin, &query, today)
                .unwrap()
                .rows
                .into_iter()
                .map(|r| r.name)
                .collect()
        };
        for typed in ["Jane Doe", "doe jane", "Doe, Ja", "JANE DOE", "jan d"] {
            let q: String = form_urlencoded::byte_serialize(typed.as_bytes()).collect();
            assert_eq!(names(&format!("q={q}")), ["Doe, Jane"], "{typed}");
        }
        for (typed, found) in [
            ("zoe", "Émoji-Test, Zoë"),
            ("emoji test", "Émoji-Test, Zoë"),
            ("kid new", "New, Kid"),
            ("obrien", "O'Brien, Seán"),
            ("o'brien sean", "O'Brien, Seán"),
        ] {
            let q: String = form_urlencoded::byte_serialize(typed.as_bytes()).collect();
            assert_eq!(names(&format!("q={q}")), [found], "{typed}");
        }
        assert!(names("q=jane%20smith").is_empty());
        // A corrected name is found by its new spelling, not its old one.
        let kid = id_of(&w, "Kid");
        crate::client_info::update(
            &ctx,
            admin,
            Role::Admin,
            kid,
            &crate::client_info::Patch {
                version: 1,
                first_name: None,
                middle_name: None,
                last_name: Some("Núñez".into()),
                dob: None,
                email: None,
                phone: None,
            },
            today,
        )
        .unwrap();
        assert_eq!(names("q=nunez"), ["Núñez, Kid"]);
        assert!(names("q=kid%20new").is_empty());
        // "Émoji-Test" sorts among the E's, not after the Z's.
        let all = names("sort=name");
        let at = |n: &str| all.iter().position(|x| x == n).unwrap();
        assert!(at("Émoji-Test, Zoë") < at("Jackson, Fanny"), "{all:?}");
        assert!(at("Doe, Jane") < at("Émoji-Test, Zoë"), "{all:?}");
    }

    #[test]
    fn each_page_starts_where_its_clinic_narrows_it_down() {
        // SQLite has no statistics here and plans alike on ten rows and on 100,000, so the
        // plans of the demo data are the plans at scale (docs/BENCHMARKS.md: naming the clinic
        // in the wrong place once made a caseload page walk every client of the clinic).
        use crate::clinics::{FIRST, Scoped};
        use crate::domain::AccountKind;
        let w = crate::testing::World::new();
        let recording = crate::native::PlanRecorder::new(w.raw());
        let scoped = Scoped::new(&recording, FIRST);
        let ctx = Ctx {
            db: &scoped,
            ..w.ctx()
        };
        let today: Date = "2026-11-25".parse().unwrap();
        let plan_of = |query: &str, who: Account, role: Role| -> String {
            recording.forget();
            list(&ctx, who, role, &Query::parse(query).unwrap(), today).unwrap();
            let plan = recording
                .take_plans(|sql| sql.contains(" LIMIT "))
                .unwrap()
                .join("\n");
            assert!(!plan.is_empty(), "no page statement for {query}");
            plan
        };
        let casey = Account {
            kind: AccountKind::Staff,
            id: 1,
        };
        let admin = Account {
            kind: AccountKind::Staff,
            id: 3,
        };
        // A caseload starts from the caller's own assignments, never from the clinic's clients.
        for query in ["", "q=jane", "q=Doe%2C+Ja", "q=jane+doe"] {
            let plan = plan_of(query, casey, Role::CaseManager);
            assert!(
                plan.starts_with("SEARCH a USING PRIMARY KEY (staff_id=?)"),
                "{query}:\n{plan}"
            );
        }
        // All Clients reads its clinic's range of the name index; a search is a range on each
        // name's index within the clinic.
        let plan = plan_of("scope=all", admin, Role::Admin);
        assert!(plan.contains("clients_by_key (clinic_id=?)"), "{plan}");
        let plan = plan_of("scope=all&q=smith", admin, Role::Admin);
        assert!(plan.contains("MULTI-INDEX OR"), "{plan}");
        assert!(
            plan.contains("clients_by_key (clinic_id=? AND last_key>? AND last_key<?)")
                && plan
                    .contains("clients_by_first_key (clinic_id=? AND first_key>? AND first_key<?)"),
            "{plan}"
        );
        let plan = plan_of("scope=all&q=Doe%2C+Ja", admin, Role::Admin);
        assert!(
            plan.contains("(clinic_id=? AND last_key>? AND last_key<?)"),
            "{plan}"
        );
    }
}
