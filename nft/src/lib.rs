//! nf_tables objects, batches and dumps.
