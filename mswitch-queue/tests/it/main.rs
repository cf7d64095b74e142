//! Integration tests of mswitch-queue on the real file system.

mod kill9;
