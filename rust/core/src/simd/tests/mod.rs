//! Accuracy and cross-path tests of the SIMD module.
