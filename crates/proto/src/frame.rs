//! DNS over a stream (RFC 1035 §4.2.2, RFC 7766 §8): every message behind a two-octet
//! length. One reader and one writer for any `AsyncRead`/`AsyncWrite` — a TCP connection,
//! a TLS session — used by the clients that speak TCP (the secondary's transfers and SOA
//! checks, the comparison tool).

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Writes `msg` behind its length, in one write (a message and its length in two TCP
/// segments costs some servers a round trip). A message over 65 535 octets cannot be
/// framed: an `InvalidInput` error, nothing written.
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, msg: &[u8]) -> std::io::Result<()> {
    let len = r53dns_zone::proto::len16("DNS message", msg.len())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let mut framed = Vec::with_capacity(2 + msg.len());
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(msg);
    w.write_all(&framed).await?;
    w.flush().await
}

/// Reads one message: its length, then that many octets. An end of stream before the
/// length is `UnexpectedEof`, as within the message.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    r.read_exact(&mut len).await?;
    let mut msg = vec![0u8; usize::from(u16::from_be_bytes(len))];
    r.read_exact(&mut msg).await?;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_round_trip_and_what_cannot_be_framed_is_an_error() {
        let (mut a, mut b) = tokio::io::duplex(1 << 17);
        write(&mut a, b"one").await.unwrap();
        write(&mut a, &[7; 65_535]).await.unwrap();
        write(&mut a, b"").await.unwrap();
        assert_eq!(read(&mut b).await.unwrap(), b"one");
        assert_eq!(read(&mut b).await.unwrap().len(), 65_535);
        assert_eq!(read(&mut b).await.unwrap(), b"");
        let e = write(&mut a, &[0; 65_536]).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        // A message cut short is an error, not a shorter message.
        a.write_all(&[0, 9, 1, 2]).await.unwrap();
        drop(a);
        assert_eq!(read(&mut b).await.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
