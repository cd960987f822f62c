//! Records as production sends them.
