//! Length-prefixed JSON framing: a 4-byte big-endian length, then the JSON body.
//!
//! Both a blocking (std) and an async (tokio) reader/writer are provided; they enforce the same
//! size limit and never allocate more than the limit for a hostile length.

use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::proto::MAX_MESSAGE_LEN;
use crate::Error;

/// Serialises `msg` into one frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, Error> {
    let body = serde_json::to_vec(msg).map_err(|e| Error::Malformed(e.to_string()))?;
    if body.len() > MAX_MESSAGE_LEN {
        return Err(Error::TooLarge {
            len: body.len(),
            max: MAX_MESSAGE_LEN,
        });
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Parses one frame body.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    serde_json::from_slice(body).map_err(|e| Error::Malformed(e.to_string()))
}

/// Room a reader makes for a message body before any of it arrived.
const INITIAL_BODY: usize = 64 << 10;

fn check_len(len: u32) -> Result<usize, Error> {
    let len = len as usize;
    if len > MAX_MESSAGE_LEN {
        return Err(Error::TooLarge {
            len,
            max: MAX_MESSAGE_LEN,
        });
    }
    Ok(len)
}

/// Writes one message (blocking).
pub fn write_msg<W: Write, T: Serialize>(w: &mut W, msg: &T) -> Result<(), Error> {
    w.write_all(&encode(msg)?)?;
    w.flush()?;
    Ok(())
}

/// Reads one frame body (blocking). `Ok(None)` on a clean end of stream before a frame.
pub fn read_frame<R: Read>(r: &mut R) -> Result<Option<Vec<u8>>, Error> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(Error::Closed),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    let len = check_len(u32::from_be_bytes(len))?;
    // Grows with what arrives: a length alone never makes the reader allocate.
    let mut body = Vec::with_capacity(len.min(INITIAL_BODY));
    r.take(len as u64).read_to_end(&mut body)?;
    if body.len() < len {
        return Err(Error::Closed);
    }
    Ok(Some(body))
}

/// Reads and parses one message (blocking).
pub fn read_msg<R: Read, T: DeserializeOwned>(r: &mut R) -> Result<T, Error> {
    match read_frame(r)? {
        Some(body) => decode(&body),
        None => Err(Error::Closed),
    }
}

/// Async framing for the server side.
pub mod nonblocking {
    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

    use super::*;

    /// Reads one frame body. `Ok(None)` on a clean end of stream before a frame.
    pub async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> Result<Option<Vec<u8>>, Error> {
        let mut len = [0u8; 4];
        let mut got = 0;
        while got < 4 {
            match r.read(&mut len[got..]).await? {
                0 if got == 0 => return Ok(None),
                0 => return Err(Error::Closed),
                n => got += n,
            }
        }
        let len = check_len(u32::from_be_bytes(len))?;
        // Grows with what arrives: many clients announcing large messages and sending
        // little hold only what they sent.
        let mut body = Vec::with_capacity(len.min(INITIAL_BODY));
        r.take(len as u64).read_to_end(&mut body).await?;
        if body.len() < len {
            return Err(Error::Closed);
        }
        Ok(Some(body))
    }

    /// Writes one message.
    pub async fn write_msg<W: AsyncWrite + Unpin, T: Serialize>(
        w: &mut W,
        msg: &T,
    ) -> Result<(), Error> {
        w.write_all(&encode(msg)?).await?;
        w.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{Request, Response};

    #[test]
    fn frames_round_trip() {
        let mut buf = Vec::new();
        write_msg(&mut buf, &Request::GetState).unwrap();
        let got: Request = read_msg(&mut &buf[..]).unwrap();
        assert_eq!(got, Request::GetState);
    }

    #[test]
    fn oversized_length_is_refused_without_allocating() {
        let buf = [0xff, 0xff, 0xff, 0xff, b'{'];
        let err = read_frame(&mut &buf[..]).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    }

    #[test]
    fn truncated_and_garbage_frames_are_errors() {
        let buf = [0, 0, 0, 10, b'{'];
        assert!(matches!(read_frame(&mut &buf[..]), Err(Error::Closed)));
        let mut g = vec![0, 0, 0, 5];
        g.extend_from_slice(b"hello");
        assert!(matches!(
            read_msg::<_, Response>(&mut &g[..]),
            Err(Error::Malformed(_))
        ));
        assert!(read_frame(&mut &[][..]).unwrap().is_none());
    }
}
