//! Host bindings for the Spin interfaces, generated from `host/wit`; only what is used is
//! re-exported.

mod generated {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "caseport:host/spin-host",
        // Async, so that a host call that waits (a busy database, later a network store)
        // gives the worker thread to other requests instead of blocking it.
        imports: { default: async | trappable },
        with: {
            "fermyon:spin/key-value.store": crate::key_value::StoreHandle,
            "fermyon:spin/sqlite.connection": crate::sqlite::ConnectionHandle,
            "spin:sqlite/sqlite.connection": crate::sqlite::ConnectionHandle,
        },
    });
}

pub use generated::SpinHost;
pub use generated::fermyon;
pub use generated::spin;
