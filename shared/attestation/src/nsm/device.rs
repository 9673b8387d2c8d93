//! The NSM device, `/dev/nsm`, through the driver of `aws-nitro-enclaves-nsm-api`.
//!
//! It exists only inside a Nitro Enclave; [`DeviceNsm::open`] fails with
//! [`NsmError::DeviceUnavailable`] anywhere else. The file stays open for the life of the
//! value (closed on drop) and each request is one ioctl; the kernel driver serialises them.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use aws_nitro_enclaves_nsm_api::api::{ErrorCode, Request, Response};
use aws_nitro_enclaves_nsm_api::driver::nsm_process_request;
use serde_bytes::ByteBuf;

use super::{Nsm, NsmDescription, NsmError, PcrState};
use crate::document::Digest;
use crate::nsm::error::DeviceErrorCode;

const DEVICE_PATH: &str = "/dev/nsm";

/// The real NSM of a Nitro Enclave.
#[derive(Debug)]
pub struct DeviceNsm {
    device: File,
}

impl DeviceNsm {
    /// Opens `/dev/nsm`.
    pub fn open() -> Result<Self, NsmError> {
        Self::open_path(Path::new(DEVICE_PATH))
    }

    fn open_path(path: &Path) -> Result<Self, NsmError> {
        let device = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|source| NsmError::DeviceUnavailable {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self { device })
    }

    fn call(&self, request: Request) -> Response {
        nsm_process_request(self.device.as_raw_fd(), request)
    }
}

fn device_error(request: &'static str, index: u16, code: ErrorCode) -> NsmError {
    match code {
        ErrorCode::InvalidIndex => NsmError::InvalidIndex { index },
        ErrorCode::ReadOnlyIndex => NsmError::ReadOnlyIndex { index },
        other => NsmError::Device {
            request,
            code: match other {
                ErrorCode::InvalidArgument => DeviceErrorCode::InvalidArgument,
                ErrorCode::InvalidIndex => DeviceErrorCode::InvalidIndex,
                ErrorCode::InvalidResponse => DeviceErrorCode::InvalidResponse,
                ErrorCode::ReadOnlyIndex => DeviceErrorCode::ReadOnlyIndex,
                ErrorCode::InvalidOperation => DeviceErrorCode::InvalidOperation,
                ErrorCode::BufferTooSmall => DeviceErrorCode::BufferTooSmall,
                ErrorCode::InputTooLarge => DeviceErrorCode::InputTooLarge,
                // `Success` never arrives as an error; count it as the device misbehaving.
                ErrorCode::InternalError | ErrorCode::Success => DeviceErrorCode::InternalError,
            },
        },
    }
}

impl Nsm for DeviceNsm {
    fn describe_pcr(&self, index: u16) -> Result<PcrState, NsmError> {
        const REQUEST: &str = "DescribePCR";
        match self.call(Request::DescribePCR { index }) {
            Response::DescribePCR { lock, data } => Ok(PcrState {
                locked: lock,
                value: data,
            }),
            Response::Error(code) => Err(device_error(REQUEST, index, code)),
            _ => Err(NsmError::UnexpectedResponse { request: REQUEST }),
        }
    }

    fn extend_pcr(&self, index: u16, data: &[u8]) -> Result<Vec<u8>, NsmError> {
        const REQUEST: &str = "ExtendPCR";
        let request = Request::ExtendPCR {
            index,
            data: data.to_vec(),
        };
        match self.call(request) {
            Response::ExtendPCR { data } => Ok(data),
            Response::Error(code) => Err(device_error(REQUEST, index, code)),
            _ => Err(NsmError::UnexpectedResponse { request: REQUEST }),
        }
    }

    fn lock_pcr(&self, index: u16) -> Result<(), NsmError> {
        const REQUEST: &str = "LockPCR";
        match self.call(Request::LockPCR { index }) {
            Response::LockPCR => Ok(()),
            Response::Error(code) => Err(device_error(REQUEST, index, code)),
            _ => Err(NsmError::UnexpectedResponse { request: REQUEST }),
        }
    }

    fn lock_pcrs(&self, range: u16) -> Result<(), NsmError> {
        const REQUEST: &str = "LockPCRs";
        match self.call(Request::LockPCRs { range }) {
            Response::LockPCRs => Ok(()),
            Response::Error(ErrorCode::InvalidIndex) => Err(NsmError::InvalidLockRange { range }),
            Response::Error(code) => Err(device_error(REQUEST, range, code)),
            _ => Err(NsmError::UnexpectedResponse { request: REQUEST }),
        }
    }

    fn describe(&self) -> Result<NsmDescription, NsmError> {
        const REQUEST: &str = "DescribeNSM";
        match self.call(Request::DescribeNSM) {
            Response::DescribeNSM {
                version_major,
                version_minor,
                version_patch,
                module_id,
                max_pcrs,
                locked_pcrs,
                digest,
            } => {
                // Nitro Enclaves use SHA-384 only; anything else is a device we do not know.
                if digest != aws_nitro_enclaves_nsm_api::api::Digest::SHA384 {
                    return Err(NsmError::UnexpectedResponse { request: REQUEST });
                }
                Ok(NsmDescription {
                    version_major,
                    version_minor,
                    version_patch,
                    module_id,
                    max_pcrs,
                    locked_pcrs,
                    digest: Digest::Sha384,
                })
            }
            Response::Error(code) => Err(device_error(REQUEST, 0, code)),
            _ => Err(NsmError::UnexpectedResponse { request: REQUEST }),
        }
    }

    fn attestation(
        &self,
        user_data: Option<&[u8]>,
        nonce: Option<&[u8]>,
        public_key: Option<&[u8]>,
    ) -> Result<Vec<u8>, NsmError> {
        const REQUEST: &str = "Attestation";
        let request = Request::Attestation {
            user_data: user_data.map(ByteBuf::from),
            nonce: nonce.map(ByteBuf::from),
            public_key: public_key.map(ByteBuf::from),
        };
        match self.call(request) {
            Response::Attestation { document } => Ok(document),
            Response::Error(code) => Err(device_error(REQUEST, 0, code)),
            _ => Err(NsmError::UnexpectedResponse { request: REQUEST }),
        }
    }

    fn get_random(&self) -> Result<Vec<u8>, NsmError> {
        const REQUEST: &str = "GetRandom";
        match self.call(Request::GetRandom) {
            Response::GetRandom { random } if !random.is_empty() => Ok(random),
            Response::Error(code) => Err(device_error(REQUEST, 0, code)),
            _ => Err(NsmError::UnexpectedResponse { request: REQUEST }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opening_a_missing_device_fails_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nsm");
        let error = DeviceNsm::open_path(&path).unwrap_err();
        assert!(matches!(error, NsmError::DeviceUnavailable { .. }));
        let message = error.to_string();
        assert!(message.contains("cannot open the NSM device"), "{message}");
        assert!(message.contains("Nitro Enclave"), "{message}");
    }

    #[test]
    fn this_machine_has_no_nsm_device() {
        // Outside an enclave (as on the build machines) `open` must fail cleanly.
        if !Path::new(DEVICE_PATH).exists() {
            assert!(matches!(
                DeviceNsm::open(),
                Err(NsmError::DeviceUnavailable { .. })
            ));
        }
    }

    #[test]
    fn device_codes_name_the_pcr() {
        assert!(matches!(
            device_error("ExtendPCR", 3, ErrorCode::ReadOnlyIndex),
            NsmError::ReadOnlyIndex { index: 3 }
        ));
        assert!(matches!(
            device_error("Attestation", 0, ErrorCode::InputTooLarge),
            NsmError::Device {
                request: "Attestation",
                code: DeviceErrorCode::InputTooLarge
            }
        ));
    }
}
