//! Test fixtures: the demo data on an in-memory SQLite, with a clock the test moves.

use std::cell::Cell;

use crate::ctx::Ctx;
use crate::native::{NativeDb, NativeKv};
use crate::ports::Clock;
use crate::settings::Settings;

/// A clock that shows the unix second in the cell until the test sets another.
pub struct FixedClock(pub Cell<i64>);

impl Clock for FixedClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_second(self.0.get()).unwrap()
    }
}

/// Migrated storage with the demo data, the default settings, and the clock at a fixed time.
pub struct World {
    pub db: NativeDb,
    pub kv: NativeKv,
    pub clock: FixedClock,
    pub settings: Settings,
}

impl World {
    pub fn new() -> Self {
        let db = NativeDb::in_memory().unwrap();
        crate::schema::open(&db).unwrap();
        let clock = FixedClock(Cell::new(1_800_000_000));
        crate::demo::load_if_empty(&db, &clock).unwrap();
        Self {
            db,
            kv: NativeKv::in_memory().unwrap(),
            clock,
            settings: Settings::default(),
        }
    }

    /// The rules' context over this world.
    pub fn ctx(&self) -> Ctx<'_> {
        Ctx {
            db: &self.db,
            kv: &self.kv,
            clock: &self.clock,
            settings: &self.settings,
        }
    }
}
