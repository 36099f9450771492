//! What every use case runs on: storage, the clock and the settings of one request.

use serde_json::Value as Json;

use crate::audit;
use crate::ports::{Clock, Db, Kv, StorageError};
use crate::settings::Settings;

/// The context of one request's rules.
pub struct Ctx<'a> {
    pub db: &'a dyn Db,
    pub kv: &'a dyn Kv,
    pub clock: &'a dyn Clock,
    pub settings: &'a Settings,
}

impl Ctx<'_> {
    /// The current unix second.
    pub fn now(&self) -> i64 {
        self.clock.now().as_second()
    }

    /// Today's date in the clinic's time zone.
    pub fn today(&self) -> jiff::civil::Date {
        self.clock
            .now()
            .to_zoned(self.settings.clinic_timezone.rules().clone())
            .date()
    }

    /// Appends an entry to the audit log (call it inside a write transaction).
    pub fn audit(
        &self,
        actor: &str,
        action: &str,
        subject: Option<&str>,
        detail: Json,
    ) -> Result<(), StorageError> {
        audit::record(self.db, self.clock, actor, action, subject, detail)
    }
}
