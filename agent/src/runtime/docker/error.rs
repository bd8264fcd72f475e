//! Docker's errors as [`RuntimeError`]s, decided in one place.
//!
//! - 404 → `NotFound` for the object asked about, except when creating a container, where
//!   Docker's "No such image" means [`RuntimeError::ImageMissing`].
//! - 304 (already stopped) never gets here: bollard counts it as success.
//! - Anything else → `Failed`, carrying the daemon's own message.

use bollard::errors::Error;

use crate::runtime::RuntimeError;

/// The HTTP status Docker answered with, if it answered.
pub(super) fn status(e: &Error) -> Option<u16> {
    match e {
        Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// `e`, from a call about the `what` named `id`.
pub(super) fn classify(e: Error, what: &'static str, id: &str) -> RuntimeError {
    match status(&e) {
        Some(404) => RuntimeError::not_found(what, id),
        _ => RuntimeError::Failed(format!("docker: {what} {id}: {e}")),
    }
}

/// `e`, from creating a container from `image`.
pub(super) fn classify_create(e: Error, image: &str, name: &str) -> RuntimeError {
    match &e {
        Error::DockerResponseServerError { status_code: 404, message } if message.contains("No such image") => {
            RuntimeError::ImageMissing(image.to_string())
        }
        _ => classify(e, "container", name),
    }
}

/// `e`, from a call that is about no one object.
pub(super) fn failed(e: Error, doing: &str) -> RuntimeError {
    RuntimeError::Failed(format!("docker: {doing}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(status_code: u16, message: &str) -> Error {
        Error::DockerResponseServerError { status_code, message: message.to_string() }
    }

    #[test]
    fn a_missing_image_is_told_apart_from_a_missing_sandbox() {
        let e = classify_create(server(404, "No such image: nope:latest"), "nope", "k8s_a");
        assert_eq!(e, RuntimeError::ImageMissing("nope".into()));
        let e = classify_create(server(404, "No such container: sb"), "img", "k8s_a");
        assert_eq!(e, RuntimeError::not_found("container", "k8s_a"));
    }

    #[test]
    fn other_errors_keep_the_daemons_message() {
        let e = classify(server(409, "container is running"), "container", "c1");
        assert!(matches!(&e, RuntimeError::Failed(m) if m.contains("container is running")), "{e}");
    }
}
