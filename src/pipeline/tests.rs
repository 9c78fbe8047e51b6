// Each range is one batch of ids: a single one is meant.
#![allow(clippy::single_range_in_vec_init)]

use super::*;
use crate::plan::Guards;
use crate::target::SinkError;
use crate::testing::{FakeSink, FakeSource};

fn options(guards: Guards) -> CopyOptions {
    CopyOptions {
        progress: ProgressMode::Off,
        zero_dates: ZeroDates::Keep,
        guards,
        expected_rows: None,
    }
}

fn copy_ids(source: FakeSource, sink: &mut FakeSink, guards: Guards) -> Result<CopyStats, Error> {
    copy(
        Box::new(source),
        sink,
        options(guards),
        &Load::default(),
        &mut || Ok(()),
    )
    .map_err(Error::from)
}

#[test]
fn every_batch_arrives_and_is_committed_once() {
    let mut sink = FakeSink::default();
    let stats = copy_ids(
        FakeSource::ids(&[0..4096, 4096..5000, 5000..5001]),
        &mut sink,
        Guards::default(),
    )
    .unwrap();
    assert_eq!(stats.rows, 5001);
    assert_eq!((sink.written, sink.committed), (5001, Some(5001)));
    assert!(!sink.aborted);
    assert_eq!(sink.began.unwrap()[0].name, "id");
}

#[test]
fn a_failed_write_aborts_and_never_commits() {
    let mut sink = FakeSink {
        fail_write: Some(2),
        ..FakeSink::default()
    };
    let e = copy_ids(
        FakeSource::ids(&[0..10, 10..20, 20..30]),
        &mut sink,
        Guards::default(),
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::Sink(SinkError::Value { batch: 2, .. })),
        "{e}"
    );
    assert!(sink.aborted && sink.committed.is_none());
}

#[test]
fn a_source_that_fails_mid_way_leaves_the_target_as_it_was() {
    let mut source = FakeSource::ids(&[0..10, 10..20, 20..30]);
    source.fail_after = Some(2);
    let mut sink = FakeSink::default();
    let e = copy_ids(source, &mut sink, Guards::default()).unwrap_err();
    assert!(
        matches!(e, Error::Source(SourceError::Read { rows: 20, .. })),
        "{e}"
    );
    assert!(sink.aborted && sink.committed.is_none());
}

#[test]
fn an_empty_or_shrunk_source_does_not_replace_a_target_that_holds_rows() {
    let mut sink = FakeSink {
        held: Some(100),
        ..FakeSink::default()
    };
    let e = copy_ids(FakeSource::ids(&[]), &mut sink, Guards::default()).unwrap_err();
    assert!(
        matches!(e, Error::Guard(Guard::Empty { current: 100, .. })),
        "{e}"
    );
    assert!(sink.aborted && sink.committed.is_none());
    let shrink = Guards {
        allow_empty: false,
        max_shrink_percent: Some(20.0),
    };
    let mut sink = FakeSink {
        held: Some(100),
        ..FakeSink::default()
    };
    let e = copy_ids(FakeSource::ids(&[0..79]), &mut sink, shrink).unwrap_err();
    assert!(
        matches!(e, Error::Guard(Guard::Shrunk { rows: 79, .. })),
        "{e}"
    );
    let mut sink = FakeSink {
        held: Some(100),
        ..FakeSink::default()
    };
    copy_ids(FakeSource::ids(&[0..80]), &mut sink, shrink).unwrap();
    assert_eq!(sink.committed, Some(80));
    let allow = Guards {
        allow_empty: true,
        max_shrink_percent: None,
    };
    let mut sink = FakeSink {
        held: Some(100),
        ..FakeSink::default()
    };
    copy_ids(FakeSource::ids(&[]), &mut sink, allow).unwrap();
    assert_eq!(sink.committed, Some(0));
}

#[test]
fn a_lock_lost_before_the_commit_keeps_the_target() {
    let mut sink = FakeSink::default();
    let e = copy(
        Box::new(FakeSource::ids(&[0..10])),
        &mut sink,
        options(Guards::default()),
        &Load::default(),
        &mut || {
            Err(Error::Lock(crate::target::LockError::Failed {
                target: "fake target".into(),
                message: "the lock was lost".into(),
            }))
        },
    )
    .unwrap_err();
    assert_eq!(e.rows, 10, "read to the end");
    assert!(matches!(e.error, Error::Lock(_)), "{}", e.error);
    assert!(sink.aborted && sink.committed.is_none());
}
