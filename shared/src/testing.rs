//! Test fixtures: the demo data on an in-memory SQLite, with a clock the test moves.

use std::cell::Cell;

use crate::clinics::{FIRST, Scoped, ScopedKv};
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
/// `db` and `kv` are clinic 1's view, as a request's; [`World::raw`] is the whole database.
pub struct World {
    pub db: Scoped<NativeDb>,
    pub kv: ScopedKv<NativeKv>,
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
            db: Scoped::new(db, FIRST),
            kv: ScopedKv::new(NativeKv::in_memory().unwrap(), FIRST),
            clock,
            settings: Settings::default(),
        }
    }

    /// The whole database, for a test's own look.
    pub fn raw(&self) -> &NativeDb {
        self.db.unscoped()
    }

    /// The deployment's context, over every clinic (delivery webhooks).
    pub fn deployment_ctx(&self) -> Ctx<'_> {
        Ctx {
            db: self.db.unscoped(),
            kv: self.kv.unscoped(),
            clock: &self.clock,
            settings: &self.settings,
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
