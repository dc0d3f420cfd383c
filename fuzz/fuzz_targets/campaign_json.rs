//! Campaign create and patch bodies: no panic on any bytes, and a body the
//! API accepts is one the record accepts too (written to a real SQLite
//! record with the real migrations): a rule the handler misses but a CHECK
//! catches would be a 500, not a 400.
#![no_main]

use std::sync::OnceLock;

use flashcoupon::domain::campaign::{Campaign, CampaignPatch, NewCampaign};
use flashcoupon::domain::ids::CampaignId;
use flashcoupon::domain::timestamp::Timestamp;
use flashcoupon::settings::Durability;
use flashcoupon::store::{CampaignStore, SqliteStore, StoreError};
use libfuzzer_sys::fuzz_target;

/// The time every body is checked at (2026-01-01).
const NOW: Timestamp = Timestamp(1_767_225_600_000);

struct Record {
    runtime: tokio::runtime::Runtime,
    store: SqliteStore,
    /// A campaign to patch, as created.
    target: Campaign,
    _dir: tempfile::TempDir,
}

fn record() -> &'static Record {
    static RECORD: OnceLock<Record> = OnceLock::new();
    RECORD.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = runtime
            .block_on(SqliteStore::open(dir.path(), Durability::Normal))
            .expect("the record opens");
        let target: NewCampaign = serde_json::from_str(
            r#"{"name":"t","discount":{"type":"fixed","amount":1000},"total_quantity":10,
                "issue_starts_at":"2026-01-01T00:00:00Z","issue_ends_at":"2026-02-01T00:00:00Z",
                "valid_until":"2026-03-01T00:00:00Z"}"#,
        )
        .expect("the fixed campaign parses");
        let target = target
            .parse(CampaignId::generate(), NOW)
            .expect("the fixed campaign is valid");
        runtime
            .block_on(store.insert_campaign(&target, NOW))
            .expect("the fixed campaign is written");
        Record {
            runtime,
            store,
            target,
            _dir: dir,
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, json)) = data.split_first() else {
        return;
    };
    let r = record();
    if which % 2 == 0 {
        let Ok(body) = serde_json::from_slice::<NewCampaign>(json) else {
            return;
        };
        let Ok(campaign) = body.parse(CampaignId::generate(), NOW) else {
            return;
        };
        match r.runtime.block_on(r.store.insert_campaign(&campaign, NOW)) {
            Ok(()) => {}
            // A shared code a live campaign holds: the API's 409 code_taken.
            Err(StoreError::Unique(_)) if campaign.code.is_some() => {}
            Err(e) => panic!("accepted but the record refused it: {e}\n{campaign:?}"),
        }
    } else {
        let Ok(patch) = serde_json::from_slice::<CampaignPatch>(json) else {
            return;
        };
        let Ok(total) = patch.validate(&r.target) else {
            return;
        };
        // Written in a transaction that is rolled back would be cleaner; the
        // same campaign patched again and again is as good: each patch must
        // hold against the original terms, which it was validated against.
        let done = r.runtime.block_on(r.store.update_campaign(
            r.target.id,
            patch.paused,
            patch.issue_ends_at,
            total,
            NOW,
        ));
        if let Err(e) = done {
            panic!("accepted but the record refused it: {e}\n{patch:?}");
        }
    }
});
