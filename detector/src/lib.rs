//! Sans-IO port-scan detection.
