//! A tiny MaxMind DB writer for tests (record size 24), written from the
//! format specification: a binary search tree over the address bits, a
//! 16-byte zero separator, a data section, and the metadata after the marker
//! `\xAB\xCD\xEFMaxMind.com`. Supports IPv4 databases, IPv6 databases with the
//! IPv4 subtree at `::/96`, and MaxMind's alias of `::ffff:0:0/96` to it
//! (the alias shares the subtree's node, so the tree is a DAG).

use std::net::IpAddr;

/// A value in the data section.
pub enum Value {
    Str(&'static str),
    U32(u32),
    Map(Vec<(&'static str, Value)>),
}

fn ctrl(out: &mut Vec<u8>, type_num: u8, size: usize) {
    assert!(size < 29 + 256, "tiny writer: sizes < 285 only");
    let (size_bits, extra) = if size < 29 {
        (size as u8, None)
    } else {
        (29, Some((size - 29) as u8))
    };
    if type_num <= 7 {
        out.push((type_num << 5) | size_bits);
    } else {
        out.push(size_bits);
        out.push(type_num - 7);
    }
    out.extend(extra);
}

fn encode(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Str(s) => {
            ctrl(out, 2, s.len());
            out.extend_from_slice(s.as_bytes());
        }
        Value::U32(n) => {
            let bytes = n.to_be_bytes();
            let skip = bytes.iter().take_while(|b| **b == 0).count();
            ctrl(out, 6, 4 - skip);
            out.extend_from_slice(&bytes[skip..]);
        }
        Value::Map(m) => {
            ctrl(out, 7, m.len());
            for (k, v) in m {
                encode(out, &Value::Str(k));
                encode(out, v);
            }
        }
    }
}

/// A child of a tree node.
#[derive(Clone, Copy)]
enum Child {
    Empty,
    Node(usize),
    Data(usize),
}

/// The database being built.
pub struct Writer {
    ip_version: u16,
    nodes: Vec<[Child; 2]>,
    data: Vec<u8>,
}

impl Writer {
    pub fn new(ip_version: u16) -> Writer {
        Writer {
            ip_version,
            nodes: vec![[Child::Empty, Child::Empty]],
            data: Vec::new(),
        }
    }

    fn bits(&self) -> u32 {
        if self.ip_version == 6 {
            128
        } else {
            32
        }
    }

    /// Key and prefix length in the tree's address space.
    fn key(&self, net: &str) -> (u128, u32) {
        let (a, l) = net.split_once('/').unwrap();
        let l: u32 = l.parse().unwrap();
        match a.parse::<IpAddr>().unwrap() {
            IpAddr::V4(v4) if self.ip_version == 6 => (u32::from(v4) as u128, l + 96),
            IpAddr::V4(v4) => (u32::from(v4) as u128, l),
            IpAddr::V6(v6) => (u128::from(v6), l),
        }
    }

    /// Walks to the parent of `net`'s node, creating nodes; returns (parent, bit).
    fn walk(&mut self, net: &str) -> (usize, usize) {
        let (key, len) = self.key(net);
        let bits = self.bits();
        let mut node = 0usize;
        for i in 0..len - 1 {
            let bit = ((key >> (bits - 1 - i)) & 1) as usize;
            node = match self.nodes[node][bit] {
                Child::Node(n) => n,
                _ => {
                    self.nodes.push([Child::Empty, Child::Empty]);
                    let n = self.nodes.len() - 1;
                    self.nodes[node][bit] = Child::Node(n);
                    n
                }
            };
        }
        (node, ((key >> (bits - len)) & 1) as usize)
    }

    /// Stores `value` for `net` (networks must not contain each other).
    pub fn insert(&mut self, net: &str, value: &Value) {
        let offset = self.data.len();
        encode(&mut self.data, value);
        let (parent, bit) = self.walk(net);
        self.nodes[parent][bit] = Child::Data(offset);
    }

    /// Makes `from` share the subtree of `to` (e.g. `::ffff:0:0/96` → `::/96`).
    pub fn alias(&mut self, from: &str, to: &str) {
        let (tp, tb) = self.walk(to);
        let target = self.nodes[tp][tb];
        let (fp, fb) = self.walk(from);
        self.nodes[fp][fb] = target;
    }

    pub fn finish(self, database_type: &'static str) -> Vec<u8> {
        let node_count = self.nodes.len();
        let mut out = Vec::new();
        for node in &self.nodes {
            for child in node {
                let rec = match *child {
                    Child::Empty => node_count,
                    Child::Node(n) => n,
                    Child::Data(off) => node_count + 16 + off,
                } as u32;
                out.extend_from_slice(&rec.to_be_bytes()[1..]);
            }
        }
        out.extend_from_slice(&[0u8; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(b"\xAB\xCD\xEFMaxMind.com");
        let mut meta = Vec::new();
        ctrl(&mut meta, 7, 9);
        let mut kv = |k: &'static str, v: &dyn Fn(&mut Vec<u8>)| {
            encode(&mut meta, &Value::Str(k));
            v(&mut meta);
        };
        let u16v = |n: u16| {
            move |m: &mut Vec<u8>| {
                ctrl(m, 5, 2);
                m.extend_from_slice(&n.to_be_bytes());
            }
        };
        kv("node_count", &|m| encode(m, &Value::U32(node_count as u32)));
        kv("record_size", &u16v(24));
        kv("ip_version", &u16v(self.ip_version));
        kv("database_type", &|m| encode(m, &Value::Str(database_type)));
        kv("languages", &|m| ctrl(m, 11, 0));
        kv("binary_format_major_version", &u16v(2));
        kv("binary_format_minor_version", &u16v(0));
        kv("build_epoch", &|m| {
            ctrl(m, 9, 4);
            m.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        });
        kv("description", &|m| ctrl(m, 7, 0));
        out.extend_from_slice(&meta);
        out
    }
}
