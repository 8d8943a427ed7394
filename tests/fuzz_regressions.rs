//! Replays the committed fuzz inputs through the harnesses the fuzz targets run
//! (`metacenter::fuzzing`), so every crash the fuzzer ever found stays fixed under a
//! plain `cargo test`:
//!
//! - `cluster-tests/fuzz/regressions/<target>/*`: inputs that once crashed; each must
//!   now return (accepted or refused) without a panic.
//! - `cluster-tests/fuzz/seeds/<target>/*`: the hand-made seed corpora; each must be
//!   accepted, except those named `bad-*`, which must be refused.
//!
//! The binary seeds (peer RPC bodies, codec-encoded commands and log entries) are
//! written by the ignored test `write_binary_seeds`:
//! `cargo test --test fuzz_regressions -- --ignored write_binary_seeds`.

use std::collections::{BTreeMap, BTreeSet};
use std::panic::catch_unwind;
use std::path::{Path, PathBuf};

use metacenter::fuzzing::{self, TARGETS};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("cluster-tests/fuzz")
}

/// The files of `dir` by name (none when it does not exist).
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<(String, Vec<u8>)> = entries
        .map(|e| {
            let path = e.expect("read dir entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&path).expect("read fuzz input"))
        })
        .collect();
    out.sort();
    out
}

fn subdirs(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn seeds_and_regressions_replay() {
    let mut failures = Vec::new();
    for (target, harness) in TARGETS {
        let seeds = files(&fuzz_dir().join("seeds").join(target));
        assert!(!seeds.is_empty(), "no seeds for fuzz target {target}");
        for (name, input) in seeds {
            match catch_unwind(|| harness(&input)) {
                Ok(accepted) if accepted == name.starts_with("bad-") => failures.push(format!(
                    "seeds/{target}/{name}: {}",
                    if accepted { "accepted" } else { "refused" }
                )),
                Ok(_) => {}
                Err(_) => failures.push(format!("seeds/{target}/{name}: panicked")),
            }
        }
        for (name, input) in files(&fuzz_dir().join("regressions").join(target)) {
            if catch_unwind(|| harness(&input)).is_err() {
                failures.push(format!("regressions/{target}/{name}: panicked"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(fuzzing::scratch_dir());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The harness table, the fuzz crate's targets and the input directories agree.
#[test]
fn targets_match_the_fuzz_crate() {
    let names: BTreeSet<String> = TARGETS.iter().map(|(n, _)| n.to_string()).collect();
    let bins: BTreeSet<String> = subdirs(&fuzz_dir().join("fuzz_targets"))
        .into_iter()
        .map(|f| f.trim_end_matches(".rs").to_string())
        .collect();
    assert_eq!(
        bins, names,
        "fuzz_targets/*.rs vs metacenter::fuzzing::TARGETS"
    );
    for kind in ["seeds", "regressions"] {
        for d in subdirs(&fuzz_dir().join(kind)) {
            assert!(names.contains(&d), "{kind}/{d} names no fuzz target");
        }
    }
}

mod binary_seeds {
    //! Sample values of every binary format, for the seed corpora.

    use super::*;
    use metacenter_raft::node::{PeerOp, PeerReply};
    use metacenter_raft::types::{Entry, LogId, Request, SnapshotMeta, StoredMembership, Vote};
    use metacenter_raft::NodeAddr;
    use metacenter_storage::{codec, Command, MetricDocIn, PointIn, Response, SyncOutcome};
    use openraft::raft::{
        AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest,
        InstallSnapshotResponse, VoteRequest, VoteResponse,
    };
    use openraft::{CommittedLeaderId, EntryPayload, Membership};

    const RUN: [u8; 16] = *b"0123456789abcdef";

    fn log_id(term: u64, index: u64) -> LogId {
        LogId::new(CommittedLeaderId::new(term, 1), index)
    }

    fn membership() -> Membership<u64, NodeAddr> {
        let addr = |p: u16| NodeAddr {
            peer: format!("127.0.0.1:{p}"),
            api: format!("127.0.0.1:{}", p + 1000),
        };
        let nodes = BTreeMap::from([(1, addr(7001)), (2, addr(7002)), (3, addr(7003))]);
        Membership::new(vec![BTreeSet::from([1, 2, 3])], nodes)
    }

    fn snapshot_meta() -> SnapshotMeta {
        SnapshotMeta {
            last_log_id: Some(log_id(2, 40)),
            last_membership: StoredMembership::new(Some(log_id(1, 1)), membership()),
            snapshot_id: "2-1-40-7".into(),
        }
    }

    pub fn meta_commands() -> Vec<Command> {
        vec![
            Command::Noop,
            Command::MetaMerge {
                hash: "movie-1".into(),
                fields: BTreeMap::from([
                    ("title".into(), "Dune".into()),
                    ("poster".into(), "bafkreib".into()),
                ]),
                expect_version: None,
            },
            Command::MetaSetAdd {
                hash: "movie-1".into(),
                prop: "tags".into(),
                member: "scifi".into(),
                expect_version: Some(1),
            },
            Command::MetaDeleteProp {
                hash: "movie-1".into(),
                prop: "poster".into(),
                expect_version: None,
            },
            Command::MetaDelete {
                hash: "movie-1".into(),
                expect_version: Some(3),
            },
        ]
    }

    pub fn service_and_load_commands() -> Vec<Command> {
        vec![
            Command::ServiceRegister {
                name: "web".into(),
                info_json: r#"{"port":8080}"#.into(),
                now_ms: 1_000,
                deregister_after_ms: Some(500),
            },
            Command::ServiceHeartbeat {
                name: "web".into(),
                now_ms: 2_000,
            },
            Command::ServiceReap {
                now_ms: 100_000,
                stale_threshold_ms: 30_000,
            },
            Command::ServiceDeregister { name: "web".into() },
            Command::LoadAdd {
                cluster: "c".into(),
                request_id: "r1".into(),
                ip: "10.0.0.1".into(),
                prompt_length: 100,
                now_ns: 10,
            },
            Command::LoadPromptDone {
                request_id: "r1".into(),
                now_ns: 20,
            },
            Command::LoadDone {
                request_id: "r1".into(),
                now_ns: 30,
            },
            Command::LoadExpire {
                now_ns: 1_000_000,
                req_expire_ns: 100,
                engine_expire_ns: 100,
                tombstone_ttl_ns: 100,
            },
        ]
    }

    pub fn points_and_catalog_commands() -> Vec<Command> {
        let settings = metacenter::Config::default().sync.defaults;
        vec![
            Command::PointsWrite {
                tenant: "t".into(),
                points: vec![PointIn {
                    run_id: RUN,
                    metric: "loss".into(),
                    step: Some(1),
                    value: 0.5,
                    time_ns: 1_700_000_000_000_000_000,
                    metadata_json: Some(r#"{"epoch":1}"#.into()),
                }],
            },
            Command::SystemPointsWrite {
                tenant: "t".into(),
                points: vec![metacenter_storage::SystemPointIn {
                    run_id: RUN,
                    metric_type: "cpu".into(),
                    value: 12.5,
                    time_ns: 1_700_000_000_000_000_000,
                    metadata_json: None,
                }],
            },
            Command::PointsRetain {
                tenant: "t".into(),
                cutoff_ns: 1_600_000_000_000_000_000,
            },
            Command::CatalogSyncStart {
                tenant: "t".into(),
                strategy: "full".into(),
                now_ns: 5,
            },
            Command::CatalogUpsert {
                tenant: "t".into(),
                gen: 1,
                now_ns: 6,
                replace_labels: true,
                docs: vec![MetricDocIn {
                    name: "up".into(),
                    kind: "gauge".into(),
                    help: "1 when up".into(),
                    unit: String::new(),
                    labels: BTreeMap::from([("job".into(), vec!["a".into(), "b".into()])]),
                }],
            },
            Command::CatalogSyncFinish {
                tenant: "t".into(),
                gen: 1,
                full: true,
                now_ns: 7,
                outcome: SyncOutcome::Completed {
                    processed: 1,
                    added: 1,
                    updated: 0,
                    duration_ns: 1,
                    errors: vec![],
                },
            },
            Command::CatalogSettings { settings },
        ]
    }

    fn all_commands() -> Vec<Command> {
        [
            meta_commands(),
            service_and_load_commands(),
            points_and_catalog_commands(),
        ]
        .concat()
    }

    fn entries() -> Vec<Entry> {
        vec![
            Entry {
                log_id: log_id(2, 41),
                payload: EntryPayload::Blank,
            },
            Entry {
                log_id: log_id(2, 42),
                payload: EntryPayload::Normal(Request {
                    commands: meta_commands(),
                }),
            },
            Entry {
                log_id: log_id(2, 43),
                payload: EntryPayload::Membership(membership()),
            },
        ]
    }

    /// `(target, file name, selector byte or none, encoded value)`.
    pub fn all() -> Vec<(&'static str, String, Option<u8>, Vec<u8>)> {
        let enc = |v: &dyn erased::Encode| v.encoded();
        let vote = Vote::new_committed(2, 1);
        let mut out = vec![
            (
                "peer_rpc",
                "append".to_string(),
                Some(b'0'),
                enc(
                    &AppendEntriesRequest::<metacenter_raft::types::TypeConfig> {
                        vote,
                        prev_log_id: Some(log_id(2, 40)),
                        entries: entries(),
                        leader_commit: Some(log_id(2, 40)),
                    },
                ),
            ),
            (
                "peer_rpc",
                "vote".into(),
                Some(b'1'),
                enc(&VoteRequest::new(Vote::new(3, 2), Some(log_id(2, 43)))),
            ),
            (
                "peer_rpc",
                "snapshot".into(),
                Some(b'2'),
                enc(
                    &InstallSnapshotRequest::<metacenter_raft::types::TypeConfig> {
                        vote,
                        meta: snapshot_meta(),
                        offset: 0,
                        data: b"MCSNAP1\n\0\0\0\0".to_vec(),
                        done: true,
                    },
                ),
            ),
            (
                "peer_rpc",
                "forward-write".into(),
                Some(b'3'),
                enc(&PeerOp::Write(service_and_load_commands())),
            ),
            (
                "peer_rpc",
                "forward-add-member".into(),
                Some(b'3'),
                enc(&PeerOp::AddMember {
                    id: 4,
                    addr: NodeAddr {
                        peer: "10.0.0.4:7000".into(),
                        api: "10.0.0.4:8080".into(),
                    },
                }),
            ),
        ];
        type RaftErr = openraft::error::RaftError<u64>;
        out.extend([
            (
                "peer_rpc",
                "append-answer".to_string(),
                Some(b'4'),
                enc(&Ok::<_, RaftErr>(AppendEntriesResponse::<u64>::HigherVote(
                    Vote::new(4, 3),
                ))),
            ),
            (
                "peer_rpc",
                "vote-answer".into(),
                Some(b'5'),
                enc(&Ok::<_, RaftErr>(VoteResponse {
                    vote,
                    vote_granted: true,
                    last_log_id: Some(log_id(2, 43)),
                })),
            ),
            (
                "peer_rpc",
                "snapshot-answer".into(),
                Some(b'6'),
                enc(&Ok::<
                    _,
                    openraft::error::RaftError<u64, openraft::error::InstallSnapshotError>,
                >(InstallSnapshotResponse { vote })),
            ),
            (
                "peer_rpc",
                "forward-answer".into(),
                Some(b'7'),
                enc(&Ok::<_, metacenter_raft::Error>(PeerReply::Written(vec![
                    Response::MetaWritten {
                        version: 2,
                        updated: 1,
                    },
                    Response::VersionMismatch { current: 3 },
                ]))),
            ),
            (
                "peer_rpc",
                "forward-not-leader".into(),
                Some(b'7'),
                enc(&Err::<PeerReply, _>(metacenter_raft::Error::NotLeader {
                    leader: Some(2),
                })),
            ),
        ]);
        for (i, c) in all_commands().iter().enumerate() {
            out.push((
                "command_decode",
                format!("command-{i:02}"),
                Some(b'0'),
                enc(c),
            ));
        }
        let record = metacenter_storage::SyncRecord {
            gen: 3,
            status: "completed".into(),
            end_ns: Some(9),
            errors: vec!["x".into()],
            ..Default::default()
        };
        let doc = metacenter_storage::MetricDoc {
            name: "up".into(),
            labels: BTreeMap::from([("job".into(), vec!["a".into()])]),
            sync_gen: 1,
            ..Default::default()
        };
        let service = metacenter_storage::ServiceEntry {
            info_json: "{}".into(),
            last_heartbeat_ms: 5,
            deregister_after_ms: None,
            mod_index: 9,
        };
        out.extend([
            (
                "command_decode",
                "batch".to_string(),
                Some(b'1'),
                enc(&Request {
                    commands: all_commands(),
                }),
            ),
            (
                "command_decode",
                "entry-normal".into(),
                Some(b'2'),
                enc(&entries()[1]),
            ),
            (
                "command_decode",
                "entry-membership".into(),
                Some(b'2'),
                enc(&entries()[2]),
            ),
            ("command_decode", "vote".into(), Some(b'3'), enc(&vote)),
            (
                "command_decode",
                "log-id".into(),
                Some(b'4'),
                enc(&Some(log_id(2, 7))),
            ),
            (
                "command_decode",
                "snapshot-meta".into(),
                Some(b'5'),
                enc(&snapshot_meta()),
            ),
            (
                "command_decode",
                "service".into(),
                Some(b'6'),
                enc(&service),
            ),
            ("command_decode", "metric-doc".into(), Some(b'7'), enc(&doc)),
            (
                "command_decode",
                "sync-record".into(),
                Some(b'8'),
                enc(&record),
            ),
            (
                "command_decode",
                "sync-settings".into(),
                Some(b'9'),
                enc(&metacenter::Config::default().sync.defaults),
            ),
            (
                "command_decode",
                "engine-load".into(),
                Some(b':'),
                enc(&metacenter_storage::EngineLoad {
                    queued_req_num: 2,
                    prompt_length: 300,
                    updated_ns: 7,
                }),
            ),
        ]);
        for (name, commands) in [
            ("meta", meta_commands()),
            ("services-load", service_and_load_commands()),
            ("points-catalog", points_and_catalog_commands()),
        ] {
            out.push((
                "command_apply",
                name.into(),
                None,
                enc(&Request { commands }),
            ));
        }
        for n in [1, 40, 300] {
            let chunk = metacenter_storage::sample_point_chunk(n);
            out.push(("chunk_decode", format!("chunk-{n}"), None, chunk));
        }
        out
    }

    mod erased {
        //! `codec::encode` behind a trait object, so one list holds every type.
        pub trait Encode {
            fn encoded(&self) -> Vec<u8>;
        }
        impl<T: serde::Serialize> Encode for T {
            fn encoded(&self) -> Vec<u8> {
                super::codec::encode(self).expect("encode a sample value")
            }
        }
    }
}

/// Writes the binary seeds (run by hand when a format changes; see the module doc).
#[test]
#[ignore]
fn write_binary_seeds() {
    for (target, name, selector, bytes) in binary_seeds::all() {
        let dir = fuzz_dir().join("seeds").join(target);
        std::fs::create_dir_all(&dir).unwrap();
        let mut data: Vec<u8> = selector.into_iter().collect();
        data.extend_from_slice(&bytes);
        std::fs::write(dir.join(name), data).unwrap();
    }
}
