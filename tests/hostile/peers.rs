//! Peers for tests/hostile.rs: a raw client socket that reads until the
//! proxy answers with an error or closes, memory readings, and a tiny TCP
//! server acting as a misbehaving backend (garbage greeting, garbage or a
//! stall in the middle of a result set). The server is a real peer on a
//! real socket, published in the sandbox ZooKeeper like any primary.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How a hostile exchange ended, as the client saw it.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// An ERR packet (its error code), then the close.
    Error(u16),
    /// Closed without an error packet.
    Closed,
}

/// Read packets until the proxy sends an ERR (at index `skip` or later) or
/// closes. Panics if neither happens within 15 s.
pub async fn ending<R: AsyncRead + Unpin>(s: &mut R, skip: usize) -> Ending {
    let read = async {
        let mut seen = 0;
        loop {
            match read_packet(s).await {
                Err(_) => return Ending::Closed,
                Ok((_, p)) if seen >= skip && p.first() == Some(&0xff) && p.len() >= 3 => {
                    return Ending::Error(u16::from_le_bytes([p[1], p[2]]));
                }
                Ok(_) => seen += 1,
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(15), read)
        .await
        .expect("the proxy answers with an error or closes")
}

/// Read one packet: (seq, payload).
pub async fn read_packet<R: AsyncRead + Unpin>(s: &mut R) -> std::io::Result<(u8, Vec<u8>)> {
    let mut h = [0u8; 4];
    s.read_exact(&mut h).await?;
    let mut p = vec![0u8; u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize];
    s.read_exact(&mut p).await?;
    Ok((h[3], p))
}

pub fn frame(seq: u8, payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_le_bytes()[..3].to_vec();
    v.push(seq);
    v.extend_from_slice(payload);
    v
}

/// Peak resident memory of this process (the proxy runs in it), KiB.
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// What the fake backend does.
#[derive(Debug, Clone, Copy)]
pub enum Misbehaviour {
    /// Random bytes instead of a greeting.
    GarbageGreeting,
    /// A greeting announcing a 16 MiB packet, then silence.
    HugeGreetingHeader,
    /// Accept the login, answer the first query with a column count and
    /// then garbage, then close.
    GarbageMidResult,
    /// Accept the login, answer the first query with a column count, then
    /// stall (the socket stays open).
    StallMidResult,
}

/// A HandshakeV10 greeting of a MariaDB-like server (mysql_native_password).
fn greeting() -> Vec<u8> {
    let caps: u32 = 0x0001 | 0x0008 | 0x0200 | 0x2000 | 0x8000 | 0x0002_0000 | 0x0008_0000;
    let mut g = vec![10];
    g.extend_from_slice(b"5.5.5-10.11.0-fake\0");
    g.extend_from_slice(&77u32.to_le_bytes());
    g.extend_from_slice(b"abcdefgh\0");
    g.extend_from_slice(&(caps as u16).to_le_bytes());
    g.push(45);
    g.extend_from_slice(&2u16.to_le_bytes());
    g.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    g.push(21);
    g.extend_from_slice(&[0; 10]);
    g.extend_from_slice(b"ijklmnopqrst\0");
    g.extend_from_slice(b"mysql_native_password\0");
    g
}

/// Listen on a loopback port; every connection gets `how`. Returns the port.
pub async fn fake_backend(how: Misbehaviour) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve(s, how));
        }
    });
    port
}

async fn serve(mut s: TcpStream, how: Misbehaviour) -> std::io::Result<()> {
    match how {
        Misbehaviour::GarbageGreeting => {
            s.write_all(&frame(0, b"\x07\xde\xad\xbe\xefnot a greeting"))
                .await?;
            return hold(s).await;
        }
        Misbehaviour::HugeGreetingHeader => {
            s.write_all(&[0xff, 0xff, 0xff, 0x00, 10]).await?;
            return hold(s).await;
        }
        _ => {}
    }
    s.write_all(&frame(0, &greeting())).await?;
    read_packet(&mut s).await?;
    s.write_all(&frame(2, &[0, 0, 0, 2, 0, 0, 0])).await?;
    read_packet(&mut s).await?;
    s.write_all(&frame(1, &[1])).await?;
    if let Misbehaviour::GarbageMidResult = how {
        // A column definition that is not one, then a header promising 16 MiB.
        s.write_all(&frame(2, b"\xfb\xfb\xfb\x00garbage")).await?;
        s.write_all(&[0xff, 0xff, 0xff, 3, 0xfe, 0xfe]).await?;
        return Ok(());
    }
    hold(s).await
}

/// Keep the socket open, reading whatever comes, until the peer leaves.
async fn hold(mut s: TcpStream) -> std::io::Result<()> {
    let mut buf = [0u8; 1024];
    while s.read(&mut buf).await? > 0 {}
    Ok(())
}

/// CPU time this process (the proxy runs in it) has used, in seconds.
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // Fields after the ")" closing the command name; utime and stime are
    // fields 14 and 15 of the whole line (clock ticks, 100 per second).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}
