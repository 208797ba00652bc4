//! The storage ports' contract as checks: each behaviour the docs of
//! [`nudge_service::ports`] promise (user state, timers, the delivery log, inboxes, report
//! counters, erasure) is one `pub async fn` generic over a [`Backend`]. Each adapter runs
//! every check against its own store with [`storage_contract!`], so SQLite (`nudge serve`)
//! and DynamoDB (AWS) are held to the same guarantees by the same code.
//!
//! Checks measure time on the wall clock, as the stores' expiry filters do. A new check is a
//! `pub async fn` in the module of its port and a line in [`storage_contract!`]; where the
//! adapters disagree, the port's docs decide and the check is the regression test.

use std::future::Future;

use nudge_service::ports::{DeliveryStore, InboxStore, ReportStore, TimerStore, UserStore};

pub mod deliveries;
pub mod erase;
pub mod inbox;
pub mod reports;
pub mod samples;
pub mod timers;
pub mod users;

/// A store under test: every storage port on one storage.
pub trait Ports:
    UserStore + TimerStore + DeliveryStore + InboxStore + ReportStore + Send + Sync + 'static
{
}

impl<S> Ports for S where
    S: UserStore + TimerStore + DeliveryStore + InboxStore + ReportStore + Send + Sync + 'static
{
}

/// What an adapter's tests give the checks: stores on storage of their own.
pub trait Backend: Send + Sync {
    type Store: Ports;

    /// A store on fresh, empty storage (a new database file, a new table).
    fn fresh(&self) -> impl Future<Output = Self::Store> + Send;

    /// Another handle on `store`'s storage, as another process holds one (a second Lambda
    /// instance, another task of `nudge serve`): it shares nothing with `store` but the
    /// stored data. The checks race writers through such handles.
    fn another(&self, store: &Self::Store) -> Self::Store;
}

/// One `#[tokio::test]` per check of the contract, each on a backend made by `$backend` (an
/// expression evaluated afresh in every test). Call it inside a module of its own.
#[macro_export]
macro_rules! storage_contract {
    ($backend:expr) => {
        $crate::storage_contract!(@checks $backend;
            users::a_first_save_is_version_1_and_load_reads_it_back,
            users::a_stale_save_conflicts_and_writes_nothing,
            users::a_write_with_an_applied_message_id_conflicts,
            users::applied_message_ids_expire_after_the_retention,
            users::the_outbox_is_cleared_only_at_its_version,
            users::save_many_writes_each_user_on_its_own,
            users::load_many_reads_every_user_in_order,
            users::concurrent_saves_of_one_user_let_exactly_one_win,
            users::concurrent_saves_of_different_users_all_succeed,
            timers::only_a_newer_version_replaces_a_timer,
            timers::a_cancel_removes_the_timer_unless_a_newer_request_set_it,
            timers::out_of_order_arrival_ends_at_the_newest_version,
            timers::claim_due_takes_due_timers_earliest_first_once,
            timers::claim_due_takes_the_earliest_across_many_up_to_the_limit,
            timers::a_claimed_timer_comes_back_only_by_restore,
            timers::concurrent_claimers_claim_each_timer_exactly_once,
            deliveries::begin_records_once_and_then_returns_the_existing_entry,
            deliveries::finish_replaces_the_entry_and_recent_lists_newest_first,
            deliveries::entries_past_the_retention_count_as_absent,
            deliveries::an_abandoned_send_is_taken_over_by_exactly_one,
            inbox::put_is_idempotent_and_list_is_newest_first,
            inbox::users_see_and_change_only_their_own_items,
            inbox::read_keeps_the_first_time_and_dismiss_hides_for_good,
            inbox::expired_items_are_neither_listed_nor_marked_read,
            reports::counts_count_once_and_any_period_reads_them_back,
            reports::a_lost_write_counts_nothing,
            erase::erase_user_removes_everything_of_that_user_only,
        );
    };
    (@checks $backend:expr; $($module:ident :: $check:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::$module::$check(&$backend).await;
            }
        )*
    };
}
