//! Container, host and dataplane log collection (issue [2/8]). Work in progress.
