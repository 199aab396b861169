//! pcap reader
