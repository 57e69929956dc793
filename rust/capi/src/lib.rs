//! C ABI over logitdiv-core (filled in by the C ABI issue).
