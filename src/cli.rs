//! Command line (OWNED BY THE ADMIN HELPER).
