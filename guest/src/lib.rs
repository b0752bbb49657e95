//! The example component: the example application ([`ds_app::Bank`]) made a component with
//! the guest SDK, plus the typed `accounts` exports of the WIT world `bank`, which the hosts'
//! `deposit` and `transfer` call. Only the component is built from this crate: natively it
//! is empty.
#![cfg_attr(target_arch = "wasm32", no_std)]
#![cfg(target_arch = "wasm32")]

use ds_guest_sdk::component::{error_to_wit, key_from_wit, key_to_wit, model};
use ds_guest_sdk::wit::types as wit;

ds_guest_sdk::export_model!(ds_app::Bank);

/// The bindings of the `accounts` interface alone: the SDK's `model` world supplies the rest
/// of `bank`, and the shared types are the SDK's (generated; exempt from the docs lint).
#[allow(missing_docs)]
mod accounts {
    wit_bindgen::generate!({
        inline: "
            package ds:example;
            world accounts {
                export ds:datastore/accounts@0.2.0;
            }
        ",
        path: "../wit",
        world: "ds:example/accounts",
        with: { "ds:datastore/types@0.2.0": ds_guest_sdk::wit::types },
    });
}

struct Accounts;

accounts::export!(Accounts with_types_in accounts);

impl accounts::exports::ds::datastore::accounts::Guest for Accounts {
    fn deposit(account: wit::Key, amount: i64) -> Result<i64, wit::Error> {
        let account = key_from_wit(&account).map_err(error_to_wit)?;
        ds_app::deposit(&mut model::<ds_app::Bank>(), &account, amount).map_err(error_to_wit)
    }

    fn transfer(from: wit::Key, to: wit::Key, amount: i64) -> Result<wit::Receipt, wit::Error> {
        let (from, to) = (key_from_wit(&from), key_from_wit(&to));
        let (from, to) = (from.map_err(error_to_wit)?, to.map_err(error_to_wit)?);
        let receipt = ds_app::transfer(&mut model::<ds_app::Bank>(), &from, &to, amount)
            .map_err(error_to_wit)?;
        Ok(wit::Receipt {
            transfer: key_to_wit(receipt.transfer),
            source_balance: receipt.from_balance,
            destination_balance: receipt.to_balance,
        })
    }
}
