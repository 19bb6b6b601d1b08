//! End-to-end tests: real nodes on real sockets (see `harness`).

mod backend;
mod harness;

mod dns;

mod health;
mod interop;
