//! [`UserStore`]: optimistic concurrency on a version, messageIds applied once, outboxes
//! cleared at their version, and the batched loads and saves of evaluate.

use futures_util::future::join_all;
use nudge_core::time::Millis;
use nudge_service::ports::{
    LoadRequest, SaveRequest, StoreError, UserStore, UserWrite, MESSAGE_ID_RETENTION_MS,
};

use crate::samples::{now, requested, write};
use crate::Backend;

fn is_conflict_of<T: std::fmt::Debug>(result: &Result<T, StoreError>, user: &str) -> bool {
    matches!(result, Err(StoreError::Conflict(u)) if u == user)
}

/// A user never written loads as `None`; the first save makes version 1, and `load` reads
/// back the state, the outbox and which of the asked messageIds the user applied.
pub async fn a_first_save_is_version_1_and_load_reads_it_back<B: Backend>(b: &B) {
    let store = b.fresh().await;
    assert_eq!(store.load("u1", &["m1"]).await.unwrap(), None);

    let outbox = [requested("u1", 1)];
    let version = store
        .save("u1", None, write(b"s1", &outbox, &["m1"]))
        .await
        .unwrap();

    assert_eq!(version, 1);
    let got = store.load("u1", &["m2", "m1"]).await.unwrap().unwrap();
    assert_eq!((got.state.as_slice(), got.version), (&b"s1"[..], 1));
    assert_eq!(got.outbox, outbox);
    assert_eq!(got.applied, ["m1"]);
    assert!(got.counts.is_empty(), "{:?}", got.counts);
    assert_eq!(store.load("u2", &[]).await.unwrap(), None);
}

/// A save whose expected version is not the stored one (older, newer, `None` over a stored
/// user, a version of a user never written) fails with `Conflict` and writes nothing: not
/// the state, not the outbox, not its messageIds.
pub async fn a_stale_save_conflicts_and_writes_nothing<B: Backend>(b: &B) {
    let store = b.fresh().await;
    store
        .save("u1", None, write(b"s1", &[], &["m1"]))
        .await
        .unwrap();
    assert_eq!(
        store
            .save("u1", Some(1), write(b"s2", &[], &["m2"]))
            .await
            .unwrap(),
        2
    );

    let outbox = [requested("u1", 3)];
    let stale = store
        .save("u1", Some(1), write(b"stale", &outbox, &["m3"]))
        .await;
    let fresh = store.save("u1", None, write(b"fresh", &[], &["m4"])).await;
    let ahead = b
        .another(&store)
        .save("u1", Some(7), write(b"ahead", &[], &["m5"]))
        .await;
    let never = store.save("u2", Some(1), write(b"x", &[], &["m6"])).await;

    assert!(is_conflict_of(&stale, "u1"), "{stale:?}");
    assert!(is_conflict_of(&fresh, "u1"), "{fresh:?}");
    assert!(is_conflict_of(&ahead, "u1"), "{ahead:?}");
    assert!(is_conflict_of(&never, "u2"), "{never:?}");
    let got = store
        .load("u1", &["m3", "m4", "m5", "m2"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.state.as_slice(), got.version), (&b"s2"[..], 2));
    assert!(got.outbox.is_empty(), "{:?}", got.outbox);
    assert_eq!(
        got.applied,
        ["m2"],
        "ids of the lost writes are not applied"
    );
    assert_eq!(store.load("u2", &[]).await.unwrap(), None);
}

/// A write carrying a messageId the user applied before fails with `Conflict` and writes
/// nothing, whether or not the writing handle loaded the user; ids are per user, new ones
/// join the applied ones, and one id twice in a write counts once.
pub async fn a_write_with_an_applied_message_id_conflicts<B: Backend>(b: &B) {
    let store = b.fresh().await;
    store
        .save("u1", None, write(b"s1", &[], &["m1", "m2"]))
        .await
        .unwrap();
    let loaded = store.load("u1", &["m2", "m3"]).await.unwrap().unwrap();
    assert_eq!(loaded.applied, ["m2"]);

    // The handle that loaded the user, then one that did not.
    let dup = store
        .save("u1", Some(1), write(b"s2", &[], &["m3", "m2"]))
        .await;
    assert!(is_conflict_of(&dup, "u1"), "{dup:?}");
    let dup = b
        .another(&store)
        .save("u1", Some(1), write(b"s2", &[], &["m1"]))
        .await;
    assert!(is_conflict_of(&dup, "u1"), "{dup:?}");

    let got = store
        .load("u1", &["m1", "m2", "m3"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!((got.state.as_slice(), got.version), (&b"s1"[..], 1));
    assert_eq!(
        got.applied,
        ["m1", "m2"],
        "m3 of the lost write is not applied"
    );

    // Another user may apply the same messageId.
    assert_eq!(
        store
            .save("u2", None, write(b"x", &[], &["m1"]))
            .await
            .unwrap(),
        1
    );
    // New ids join the applied ones.
    assert_eq!(
        store
            .save("u1", Some(1), write(b"s2", &[], &["m3", "m3"]))
            .await
            .unwrap(),
        2
    );
    let got = b
        .another(&store)
        .load("u1", &["m1", "m2", "m3", "m4"])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.applied, ["m1", "m2", "m3"]);
}

/// An applied messageId is remembered for [`MESSAGE_ID_RETENTION_MS`] from its write: older,
/// it is neither reported by `load` nor refused by `save`, and applying it again counts.
pub async fn applied_message_ids_expire_after_the_retention<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let at = |when: Millis, ids| UserWrite {
        now: when,
        ..write(b"s", &[], ids)
    };
    let long_ago = now() - MESSAGE_ID_RETENTION_MS - 60_000;
    store
        .save("u1", None, at(long_ago, &["old"]))
        .await
        .unwrap();
    store
        .save("u1", Some(1), at(now() - 1_000, &["recent"]))
        .await
        .unwrap();

    let got = store.load("u1", &["old", "recent"]).await.unwrap().unwrap();
    assert_eq!(got.applied, ["recent"]);

    store
        .save("u1", Some(2), at(now(), &["old"]))
        .await
        .unwrap();
    let got = store.load("u1", &["old", "recent"]).await.unwrap().unwrap();
    assert_eq!((got.version, got.applied.len()), (3, 2));
}

/// `clear_outbox` empties the outbox only while the version is the one given (a newer write
/// has its own outbox), changes nothing else, and creates nothing for a user never written;
/// `clear_outboxes` does the same for several users.
pub async fn the_outbox_is_cleared_only_at_its_version<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let (first, second) = ([requested("u1", 1)], [requested("u1", 2)]);
    store
        .save("u1", None, write(b"s1", &first, &[]))
        .await
        .unwrap();
    assert_eq!(store.load("u1", &[]).await.unwrap().unwrap().outbox, first);
    store
        .save("u1", Some(1), write(b"s2", &second, &[]))
        .await
        .unwrap();

    store.clear_outbox("u1", 1).await.unwrap();
    assert_eq!(store.load("u1", &[]).await.unwrap().unwrap().outbox, second);
    store.clear_outbox("u1", 2).await.unwrap();
    let got = store.load("u1", &[]).await.unwrap().unwrap();
    assert!(got.outbox.is_empty(), "{:?}", got.outbox);
    assert_eq!((got.state.as_slice(), got.version), (&b"s2"[..], 2));

    store.clear_outbox("nobody", 1).await.unwrap();
    assert_eq!(store.load("nobody", &[]).await.unwrap(), None);

    let third = [requested("u2", 1)];
    store
        .save("u2", None, write(b"t1", &third, &[]))
        .await
        .unwrap();
    store
        .save("u3", None, write(b"t1", &third, &[]))
        .await
        .unwrap();
    store
        .clear_outboxes(&[("u2", 1), ("u3", 9), ("nobody", 4)])
        .await
        .unwrap();
    assert!(store
        .load("u2", &[])
        .await
        .unwrap()
        .unwrap()
        .outbox
        .is_empty());
    assert_eq!(store.load("u3", &[]).await.unwrap().unwrap().outbox, third);
}

/// In `save_many` each write is conditional on its own: a stale version or an applied
/// messageId conflicts that write only, the others go through; `load_many` reads them back
/// in the order asked, `None` for users never written.
pub async fn save_many_writes_each_user_on_its_own<B: Backend>(b: &B) {
    let store = b.fresh().await;
    store
        .save("u2", None, write(b"u2-1", &[], &["m0"]))
        .await
        .unwrap();
    store
        .save("u4", None, write(b"u4-1", &[], &["m9"]))
        .await
        .unwrap();
    let outbox = [requested("u3", 1)];
    let save = |user_id, expected, write| SaveRequest {
        user_id,
        expected,
        write,
    };

    let saved = store
        .save_many(&[
            save("u1", None, write(b"u1-1", &[], &["m1"])),
            save("u2", None, write(b"u2-x", &outbox, &["m2"])),
            save("u3", None, write(b"u3-1", &outbox, &["m3", "m4"])),
            save("u4", Some(1), write(b"u4-x", &[], &["m9"])),
        ])
        .await
        .unwrap();

    assert!(matches!(saved[0], Ok(1)), "{saved:?}");
    assert!(is_conflict_of(&saved[1], "u2"), "stale: {saved:?}");
    assert!(matches!(saved[2], Ok(1)), "{saved:?}");
    assert!(is_conflict_of(&saved[3], "u4"), "applied id: {saved:?}");
    let load = |user_id, message_ids| LoadRequest {
        user_id,
        message_ids,
    };
    let loaded = store
        .load_many(&[
            load("u1", &["m1"]),
            load("u2", &["m0", "m2"]),
            load("nobody", &[]),
            load("u3", &["m3", "m4", "m5"]),
            load("u4", &["m9"]),
        ])
        .await
        .unwrap();
    let [Some(u1), Some(u2), None, Some(u3), Some(u4)] = &loaded[..] else {
        panic!("{loaded:?}");
    };
    assert_eq!((u1.state.as_slice(), u1.version), (&b"u1-1"[..], 1));
    assert_eq!(u1.applied, ["m1"]);
    assert_eq!((u2.state.as_slice(), u2.version), (&b"u2-1"[..], 1));
    assert_eq!(u2.applied, ["m0"], "the lost write applied nothing");
    assert!(u2.outbox.is_empty());
    assert_eq!((u3.outbox.as_slice(), u3.applied.len()), (&outbox[..], 2));
    assert_eq!((u4.state.as_slice(), u4.version), (&b"u4-1"[..], 1));
}

/// `load_many` answers for any number of users (more than one backend call takes), in the
/// order asked, a user asked twice twice, each with its own applied messageIds; and it
/// reads what another handle wrote.
pub async fn load_many_reads_every_user_in_order<B: Backend>(b: &B) {
    let store = b.fresh().await;
    const USERS: usize = 230;
    let names: Vec<(String, String, Vec<u8>)> = (0..USERS)
        .map(|i| {
            (
                format!("user-{i}"),
                format!("m-{i}"),
                i.to_string().into_bytes(),
            )
        })
        .collect();
    let ids: Vec<[&str; 1]> = names.iter().map(|(_, id, _)| [id.as_str()]).collect();
    let writes: Vec<SaveRequest<'_>> = names
        .iter()
        .zip(&ids)
        .map(|((user, _, state), id)| SaveRequest {
            user_id: user,
            expected: None,
            write: write(state, &[], id),
        })
        .collect();
    let saved = b.another(&store).save_many(&writes).await.unwrap();
    assert!(saved.iter().all(|s| matches!(s, Ok(1))), "{saved:?}");

    // Backwards, with users never written between them and one user twice.
    let mut asked: Vec<LoadRequest<'_>> = Vec::new();
    for (i, (user, _, _)) in names.iter().enumerate().rev() {
        asked.push(LoadRequest {
            user_id: user,
            message_ids: if i % 2 == 0 { &ids[i] } else { &[] },
        });
        if i % 50 == 0 {
            asked.push(LoadRequest {
                user_id: "nobody",
                message_ids: &[],
            });
        }
    }
    asked.push(LoadRequest {
        user_id: "user-7",
        message_ids: &["m-7", "m-8"],
    });
    let loaded = store.load_many(&asked).await.unwrap();

    assert_eq!(loaded.len(), asked.len());
    for (request, got) in asked.iter().zip(&loaded) {
        if request.user_id == "nobody" {
            assert_eq!(got, &None);
            continue;
        }
        let got = got
            .as_ref()
            .unwrap_or_else(|| panic!("{} missing", request.user_id));
        let i: usize = request.user_id["user-".len()..].parse().unwrap();
        assert_eq!(
            (got.state.as_slice(), got.version),
            (names[i].2.as_slice(), 1)
        );
        let expected: Vec<&str> = request
            .message_ids
            .iter()
            .copied()
            .filter(|id| *id == names[i].1)
            .collect();
        assert_eq!(got.applied, expected, "{}", request.user_id);
    }
    assert_eq!(store.load_many(&[]).await.unwrap(), []);
}

/// Writers racing for one user at one version (each its own handle, as separate Lambda
/// instances are): exactly one wins, the others get `Conflict`.
pub async fn concurrent_saves_of_one_user_let_exactly_one_win<B: Backend>(b: &B) {
    let store = b.fresh().await;
    store
        .save("u1", None, write(b"s0", &[], &[]))
        .await
        .unwrap();
    let writers: Vec<B::Store> = (0..12).map(|_| b.another(&store)).collect();
    let states: Vec<Vec<u8>> = (0..writers.len())
        .map(|i| format!("s{i}").into_bytes())
        .collect();
    let ids: Vec<String> = (0..writers.len()).map(|i| format!("m{i}")).collect();

    let results = join_all(writers.iter().zip(&states).zip(&ids).map(
        |((writer, state), id)| async move {
            let id = [id.as_str()];
            writer.save("u1", Some(1), write(state, &[], &id)).await
        },
    ))
    .await;

    let won: Vec<usize> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Ok(v) => {
                assert_eq!(*v, 2);
                Some(i)
            }
            Err(e) => {
                assert!(matches!(e, StoreError::Conflict(_)), "{e}");
                None
            }
        })
        .collect();
    assert_eq!(won.len(), 1, "{results:?}");
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    let got = store.load("u1", &all).await.unwrap().unwrap();
    assert_eq!((got.version, got.state), (2, states[won[0]].clone()));
    assert_eq!(
        got.applied,
        [all[won[0]]],
        "only the winner's id is applied"
    );
}

/// Concurrent saves of different users (evaluate's batches, separate instances) all go
/// through.
pub async fn concurrent_saves_of_different_users_all_succeed<B: Backend>(b: &B) {
    let store = b.fresh().await;
    let users: Vec<String> = (0..40).map(|i| format!("user-{i}")).collect();
    let results = join_all(users.iter().map(|user| {
        let store = &store;
        async move {
            let outbox = [requested(user, 1)];
            let id = [user.as_str()];
            store
                .save(user, None, write(user.as_bytes(), &outbox, &id))
                .await
        }
    }))
    .await;
    assert!(results.iter().all(|r| matches!(r, Ok(1))), "{results:?}");
    for user in &users {
        let got = store.load(user, &[user.as_str()]).await.unwrap().unwrap();
        assert_eq!(
            (got.state.as_slice(), got.applied.len()),
            (user.as_bytes(), 1)
        );
    }
}
