//! Verification: whether a target table still equals its source, compared by checksums
//! of key ranges computed where it is cheapest, down to the keys that differ.
