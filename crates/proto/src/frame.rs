//! DNS over a stream (RFC 1035 §4.2.2, RFC 7766 §8): every message behind a two-octet
//! length. One reader and one writer for any `AsyncRead`/`AsyncWrite` — a TCP connection,
//! a TLS session — used by the clients that speak TCP (the secondary's transfers and SOA
//! checks, the comparison tool).

use std::io::IoSlice;

use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};

/// Writes `msg` behind its length, without copying it: one vectored write carries both, so
/// over TCP they leave in one segment and over TLS in one record (a message and its length
/// in two segments costs some servers a round trip). Does not flush. A message over
/// 65 535 octets cannot be framed: an `InvalidInput` error, nothing written.
pub async fn send<W: AsyncWrite + Unpin>(w: &mut W, msg: &[u8]) -> std::io::Result<()> {
    let len = r53dns_zone::proto::len16("DNS message", msg.len())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?
        .to_be_bytes();
    let mut parts = [IoSlice::new(&len), IoSlice::new(msg)];
    let mut parts = &mut parts[..];
    while !parts.is_empty() {
        let n = w.write_vectored(parts).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut parts, n);
    }
    Ok(())
}

/// [`send`], then a flush: for clients, whose next step is to wait for the answer.
pub async fn write<W: AsyncWrite + Unpin>(w: &mut W, msg: &[u8]) -> std::io::Result<()> {
    send(w, msg).await?;
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
        let e = send(&mut a, &[0; 70_000]).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        // A message cut short is an error, not a shorter message.
        a.write_all(&[0, 9, 1, 2]).await.unwrap();
        drop(a);
        assert_eq!(read(&mut b).await.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    }

    /// Takes at most three octets per call, across the slices it is given: a short
    /// vectored write in the middle of the length or of the message.
    struct Trickle(Vec<u8>, usize);

    impl AsyncWrite for Trickle {
        fn poll_write(
            self: std::pin::Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.poll_write_vectored(cx, &[IoSlice::new(buf)])
        }
        fn poll_write_vectored(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> std::task::Poll<std::io::Result<usize>> {
            let taken: Vec<u8> = bufs.iter().flat_map(|b| b.iter().copied()).take(3).collect();
            self.0.extend_from_slice(&taken);
            self.1 += 1;
            std::task::Poll::Ready(Ok(taken.len()))
        }
        fn is_write_vectored(&self) -> bool {
            true
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn short_vectored_writes_resume_where_they_stopped() {
        let msg: Vec<u8> = (0..=255).collect();
        let mut w = Trickle(Vec::new(), 0);
        send(&mut w, &msg).await.unwrap();
        assert_eq!(w.0[..2], [1, 0]);
        assert_eq!(w.0[2..], msg[..]);
        assert_eq!(w.1, (2 + msg.len()).div_ceil(3));
    }
}
