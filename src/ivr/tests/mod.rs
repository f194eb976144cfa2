//! Data-driven tests for the compiler and the engine.
