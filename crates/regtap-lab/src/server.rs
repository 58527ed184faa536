//! An accept loop on a thread and runtime of its own, for the lab's small
//! servers (the token server, the plain tunnel).

use std::future::Future;
use std::thread::JoinHandle;

use crate::LabError;

/// Serves connections until dropped; dropping stops the loop and joins its thread.
pub(crate) struct BackgroundServer {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl BackgroundServer {
    /// Accepts on `listener` (already non-blocking) and runs `serve` on every
    /// connection as its own task.
    pub(crate) fn start<F, Fut>(
        name: &str,
        listener: std::net::TcpListener,
        serve: F,
    ) -> Result<Self, LabError>
    where
        F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| LabError::Setup(format!("{name} runtime: {e}")))?;
        let (shutdown, mut stop) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("lab-{name}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    loop {
                        tokio::select! {
                            _ = &mut stop => break,
                            accepted = listener.accept() => {
                                let Ok((stream, _)) = accepted else { continue };
                                tokio::spawn(serve(stream));
                            }
                        }
                    }
                });
            })
            .map_err(|e| LabError::Setup(format!("{name} thread: {e}")))?;
        Ok(BackgroundServer {
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

impl Drop for BackgroundServer {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
