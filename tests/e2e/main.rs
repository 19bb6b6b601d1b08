//! End-to-end tests: real nodes on real sockets (see `harness`).

mod abuse;
mod admin_api;
mod answers;
mod backend;
mod bluegreen;
mod cdp;
mod geodata;
mod harness;

mod cli;
mod cluster;
mod corners;
mod daemon;
mod dns;
mod dnssec;
mod flood;

mod health;
mod interop;
mod lifecycle;
mod limits;
mod probing;
mod recovery;
mod reload;
mod routing;
mod scale;
mod scopes;
mod status_page;
mod wildcard;
