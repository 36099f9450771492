//! What a request's store holds for the Spin interfaces: the component's grants and the
//! application's shared stores, reached through [`SpinView`].

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::{HasData, ResourceTable};

use crate::bindings::fermyon::spin::variables;
use crate::key_value::KeyValue;
use crate::outbound_http::AllowedHosts;
use crate::sqlite::Databases;

/// What one component was granted in the manifest, resolved at start-up.
#[derive(Debug)]
pub struct Grants {
    pub component: String,
    pub key_value_stores: Vec<String>,
    pub sqlite_databases: Vec<String>,
    pub variables: HashMap<String, String>,
    pub allowed_outbound_hosts: Arc<AllowedHosts>,
    pub environment: Vec<(String, String)>,
}

/// The application's state shared by every request.
pub struct Stores {
    pub key_value: KeyValue,
    pub sqlite: Databases,
}

/// The borrowed view the Spin host traits are implemented on.
pub struct SpinView<'a> {
    pub table: &'a mut ResourceTable,
    pub grants: &'a Grants,
    pub stores: &'a Stores,
}

/// Marker tying [`SpinView`] to the generated `add_to_linker` functions.
pub struct SpinData;

impl HasData for SpinData {
    type Data<'a> = SpinView<'a>;
}

impl variables::Host for SpinView<'_> {
    async fn get(&mut self, name: String) -> wasmtime::Result<Result<String, variables::Error>> {
        Ok(crate::variables::lookup(&self.grants.variables, &name))
    }
}
