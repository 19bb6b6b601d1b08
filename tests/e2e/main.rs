//! End-to-end tests: real nodes on real sockets (see `harness`).

mod harness;

mod dns;
