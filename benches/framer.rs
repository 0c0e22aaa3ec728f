//! Criterion benches for the data-path hot spots: the packet framer + tracker
//! over a realistic reply stream, and routing-table reads under concurrent swaps.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use mysql_zk_proxy_core::routing::{Primary, Route, RouteTable};
use mysql_zk_proxy_protocol::{caps, Framer, Tracker};

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    v.push(seq);
    v.extend_from_slice(payload);
    v
}

/// A point-select reply: column count, one column definition, one row, OK.
fn point_select_reply() -> Vec<u8> {
    let mut v = packet(1, &[1]);
    v.extend(packet(2, b"\x03def\x06sbtest\x08sbtest1\x08sbtest1\x01c\x01c\x0c\x2d\x00\xb4\x00\x00\x00\xfe\x00\x00\x00\x00\x00"));
    v.extend(packet(3, &[&[120u8][..], &[b'x'; 120]].concat()));
    v.extend(packet(4, &[0xfe, 0, 0, 2, 0, 0, 0]));
    v
}

fn logged_in_tracker() -> Tracker {
    let c = caps::CLIENT_PROTOCOL_41 | caps::CLIENT_DEPRECATE_EOF | caps::CLIENT_MULTI_RESULTS;
    Tracker::logged_in(c, 0, 2)
}

fn framer(c: &mut Criterion) {
    let query = packet(
        0,
        b"\x17\x01\x00\x00\x00\x00\x01\x00\x00\x00\x00\x01\x03\x00\x2a\x00\x00\x00",
    );
    let reply = point_select_reply();
    let mut g = c.benchmark_group("framer");
    g.throughput(Throughput::Bytes((query.len() + reply.len()) as u64));
    g.bench_function("point_select_round_trip", |b| {
        let mut t = logged_in_tracker();
        let (mut up, mut down) = (Framer::new(), Framer::new());
        b.iter(|| {
            up.feed(&query, |p| {
                t.on_client_packet(&p);
            });
            down.feed(&reply, |p| {
                t.on_server_packet(&p);
            });
            assert!(t.at_rest());
        })
    });
    let rows: Vec<u8> = (0..1000)
        .flat_map(|i| packet(i as u8, &[200u8; 201]))
        .collect();
    g.throughput(Throughput::Bytes(rows.len() as u64));
    g.bench_function("rows_200B_x1000", |b| {
        b.iter_batched(
            Framer::new,
            |mut f| f.feed(&rows, |_| {}),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn routing(c: &mut Criterion) {
    let table = Arc::new(RouteTable::new());
    let publish = |t: &RouteTable, epoch: u64| {
        t.publish(|prev| Route {
            primary: Some(Primary {
                host: "127.0.0.1".into(),
                port: 3306,
                epoch,
                server_id: None,
                server_uuid: None,
            }),
            ..prev.clone()
        });
    };
    publish(&table, 1);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (table, stop) = (table.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut epoch = 2;
            while !stop.load(Ordering::Relaxed) {
                publish(&table, epoch);
                epoch += 1;
                std::thread::yield_now();
            }
        })
    };
    c.bench_function("routing/current_under_concurrent_swaps", |b| {
        b.iter(|| table.current().primary.as_ref().map(|p| p.port))
    });
    // the same read while other threads read too (sessions on every core)
    for readers in [1usize, 3] {
        let done = Arc::new(AtomicBool::new(false));
        let others: Vec<_> = (0..readers)
            .map(|_| {
                let (table, stop) = (table.clone(), done.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::black_box(table.current().primary.as_ref().map(|p| p.port));
                    }
                })
            })
            .collect();
        let name = format!("routing/current_under_swaps_with_{readers}_other_readers");
        c.bench_function(&name, |b| {
            b.iter(|| table.current().primary.as_ref().map(|p| p.port))
        });
        done.store(true, Ordering::Relaxed);
        others.into_iter().for_each(|t| t.join().unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
}

criterion_group!(benches, framer, routing);
criterion_main!(benches);
