//! Layer 2: every GPU kernel against the f64 CPU reference, on tiny (1×1), odd and
//! non-multiple-of-4 shapes, shapes spanning many workgroups, and (through a context capped at
//! 16 workgroups per dimension) the 2-D grid path. One file per op family.

mod adam;
mod conv2d;
mod errors;
mod flow;
mod gram;
mod guide;
mod lbfgs;
mod loss;
mod pixel;
mod pool;
mod relu;
mod vector;
mod window;
