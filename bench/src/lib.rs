//! Benchmarks and the load generator of sfu (issue 3). Empty until then.
