//! The built-in instruction editor ("vidplay-edit-1"): one change of a picture per instruction
//! (colour, shape, setting, weather, position, size), keeping everything else.
//!
//! Like the motion model, it does not repaint the picture: from the picture seen at 32 pixels
//! on its short side and the edit, [`net::EditNet`] writes a mask of where to change it and the
//! colours to put there, and [`apply`] draws that onto the picture at its own resolution; what
//! the mask leaves out stays exactly as it was.
//!
//! - [`instruction`]: what it can be asked, in several phrasings. [`pairs`]: exact training
//!   pairs from the toy world. [`net`], [`training`]: the network and its trainer.
//! - [`apply`]: editing. [`evaluation`]: Emu Edit's two axes on held-out edits.

pub mod apply;
pub mod evaluation;
pub mod instruction;
pub mod net;
pub mod pairs;
pub mod training;
