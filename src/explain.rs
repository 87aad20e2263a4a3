//! `cordon explain`: whether a profile allows one access, which rule decides
//! (with the profile file and line), and the smallest change that would allow
//! a denied access. Pure decisions over the policy and the plan, shared with
//! run reports (rule names and suggestions for recorded denials).

use crate::cli::ExplainArgs;
use crate::error::{Error, Result};

/// `cordon explain`.
pub fn command(_args: ExplainArgs) -> Result<u8> {
    Err(Error::Usage("explain is not implemented yet".into()))
}
