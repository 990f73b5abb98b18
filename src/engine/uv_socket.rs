//! A connection's TCP socket, read and written where its driver is polled:
//! through tokio's reactor on the I/O thread (the handshake; connections no
//! event loop drives), or on the JS thread with readiness from Node's event
//! loop (`engine::uv`) once a driver polls it there (`engine::driver`).
//!
//! tokio's `TcpStream` keeps the readiness its reactor reported, so on the JS
//! thread the socket leaves the reactor (`into_std`) and is read and written
//! directly; should the event loop be torn down (a worker ending), the next
//! poll, on the I/O thread, puts it back (`from_std`). TLS runs on top,
//! unchanged.

use std::io;
use std::pin::Pin;
#[cfg(unix)]
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

#[cfg(unix)]
use crate::engine::uv::{self, EventLoop};

/// A TCP socket whose readiness comes from tokio or from Node's event loop.
pub struct UvSocket {
  io: Io,
}

enum Io {
  Tokio(TcpStream),
  #[cfg(unix)]
  Loop {
    tcp: std::net::TcpStream,
    home: Arc<EventLoop>,
    poll: uv::Poll,
    /// The last read took less than it had room for: the socket was empty
    /// then, and libuv reports it when it is not (see `poll_read`).
    drained: bool,
  },
  /// Only while switching.
  Gone,
}

impl UvSocket {
  pub fn new(tcp: TcpStream) -> UvSocket {
    UvSocket { io: Io::Tokio(tcp) }
  }

  /// Moves the socket to where it is being polled from.
  #[cfg(unix)]
  fn place(&mut self) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    match &self.io {
      Io::Tokio(_) => {
        let Some((home, driver)) = crate::engine::driver::polled_on_loop() else {
          return Ok(());
        };
        let Io::Tokio(tcp) = std::mem::replace(&mut self.io, Io::Gone) else {
          unreachable!()
        };
        let tcp = tcp.into_std()?;
        let Some(poll) = home.watch(tcp.as_raw_fd(), driver) else {
          // No poll handle: stay with tokio's reactor (it wakes the driver too).
          let _rt = crate::engine::runtime().enter();
          self.io = Io::Tokio(TcpStream::from_std(tcp)?);
          return Ok(());
        };
        self.io = Io::Loop {
          tcp,
          home,
          poll,
          drained: false,
        };
      }
      Io::Loop { home, .. } if !home.is_open() => {
        // Torn down: teardown closed the poll handle; back to tokio.
        let Io::Loop { tcp, .. } = std::mem::replace(&mut self.io, Io::Gone) else {
          unreachable!()
        };
        let _rt = crate::engine::runtime().enter();
        self.io = Io::Tokio(TcpStream::from_std(tcp)?);
      }
      _ => {}
    }
    Ok(())
  }

  #[cfg(not(unix))]
  fn place(&mut self) -> io::Result<()> {
    Ok(())
  }
}

fn gone() -> io::Error {
  io::Error::new(io::ErrorKind::NotConnected, "socket lost while switching")
}

impl AsyncRead for UvSocket {
  fn poll_read(
    self: Pin<&mut Self>,
    cx: &mut Context<'_>,
    buf: &mut ReadBuf<'_>,
  ) -> Poll<io::Result<()>> {
    let me = self.get_mut();
    me.place()?;
    match &mut me.io {
      Io::Tokio(t) => Pin::new(t).poll_read(cx, buf),
      #[cfg(unix)]
      Io::Loop { tcp, drained, .. } => {
        use std::os::fd::AsRawFd;
        // Once a read came back short, the next one would only say EAGAIN
        // until libuv reports the socket readable (its polling is
        // level-triggered): skip that syscall, made after every batch of
        // replies and every write otherwise.
        if *drained && !uv::take_readable() {
          return Poll::Pending;
        }
        let fd = tcp.as_raw_fd();
        loop {
          // SAFETY: reads at most the unfilled part into memory the ReadBuf owns.
          let n = unsafe {
            let unfilled = buf.unfilled_mut();
            libc::read(fd, unfilled.as_mut_ptr().cast(), unfilled.len())
          };
          if n >= 0 {
            let n = n as usize;
            *drained = n < buf.remaining();
            // SAFETY: the kernel initialised those `n` bytes.
            unsafe { buf.assume_init(n) };
            buf.advance(n);
            return Poll::Ready(Ok(()));
          }
          let e = io::Error::last_os_error();
          match e.kind() {
            io::ErrorKind::Interrupted => continue,
            // The poll handle always watches reads; it polls the driver.
            io::ErrorKind::WouldBlock => return Poll::Pending,
            _ => return Poll::Ready(Err(e)),
          }
        }
      }
      Io::Gone => Poll::Ready(Err(gone())),
    }
  }
}

impl AsyncWrite for UvSocket {
  fn poll_write(
    self: Pin<&mut Self>,
    cx: &mut Context<'_>,
    data: &[u8],
  ) -> Poll<io::Result<usize>> {
    let me = self.get_mut();
    me.place()?;
    match &mut me.io {
      Io::Tokio(t) => Pin::new(t).poll_write(cx, data),
      #[cfg(unix)]
      Io::Loop {
        tcp, home, poll, ..
      } => loop {
        use std::io::Write;
        match (&*tcp).write(data) {
          Ok(n) => return Poll::Ready(Ok(n)),
          Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
          Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            home.want_write(poll, true);
            return Poll::Pending;
          }
          Err(e) => return Poll::Ready(Err(e)),
        }
      },
      Io::Gone => Poll::Ready(Err(gone())),
    }
  }

  fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    match &mut self.get_mut().io {
      Io::Tokio(t) => Pin::new(t).poll_flush(cx),
      _ => Poll::Ready(Ok(())),
    }
  }

  fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
    match &mut self.get_mut().io {
      Io::Tokio(t) => Pin::new(t).poll_shutdown(cx),
      #[cfg(unix)]
      Io::Loop { tcp, .. } => Poll::Ready(match tcp.shutdown(std::net::Shutdown::Write) {
        Err(e) if e.kind() != io::ErrorKind::NotConnected => Err(e),
        _ => Ok(()),
      }),
      Io::Gone => Poll::Ready(Ok(())),
    }
  }
}

impl Drop for UvSocket {
  fn drop(&mut self) {
    #[cfg(unix)]
    if let Io::Loop {
      tcp, home, poll, ..
    } = std::mem::replace(&mut self.io, Io::Gone)
    {
      // The fd must outlive its poll handle: both go on the JS thread.
      home.release(poll, Box::new(tcp));
    }
  }
}
