//! Private project networks: one Linux bridge per project, one network namespace and veth
//! pair per workload, configured over netlink (no `ip` command).
//!
//! What a workload on project `n`'s network gets: a network namespace that Enclave creates
//! (`unshare(CLONE_NEWNET)` on a short-lived thread, bind-mounted at
//! `RUNTIME_DIR/netns/<id>`; runc joins it through the OCI spec's namespace `path`), `lo` up,
//! and `eth0` with the next free address of the project's subnet (the `n`-th subnet of the
//! pool, see [`NetConfig`]). The other end of the veth pair is a port of the project's bridge.
//!
//! Invariants:
//!
//! - **No host address on a bridge.** A bridge carries frames between a project's workloads
//!   and nothing else: the host has no IPv4 address on it (and ignores ARP on it), so no
//!   host service can be reached from a workload, and the host reaches a workload only through
//!   [`connect_in_netns`], from inside the workload's own namespace.
//! - **No default route.** A workload's only route is its subnet's; every other destination
//!   (the host's addresses, another project's subnet, 169.254.169.254) is unreachable at
//!   once. The namespace belongs to the host's user namespace, so root in the sandbox (root
//!   of its own user namespace only) cannot add routes, addresses or links.
//! - **No IPv6.** Disabled in the workload's namespace (all interfaces, `lo` included), on the
//!   bridge and on the host ends of the veths: there are no link-local addresses to reach.
//! - **Per-runtime interface tag.** Interface names are global in the host's namespace and
//!   several runtimes may share a machine: bridges are named `eb<tag><index>` and host veths
//!   `ev<tag><offset>` (hex), where the tag is six hex digits of a hash of the runtime
//!   directory. A runtime only ever touches interfaces with its own tag.
//! - **Cleanup.** [`Networks::detach`] removes the veth, unmounts and removes the namespace
//!   file, and removes the bridge with the project's last workload; [`Networks::reap`] removes
//!   whatever a crashed runtime left (namespace files, veths, bridges with its tag).
//!
//! Note for hosts with Docker: when `br_netfilter` is loaded and
//! `net.bridge.bridge-nf-call-iptables` is 1, bridged traffic passes the host's iptables
//! `FORWARD` chain, and a `DROP` policy there also drops traffic between a project's workloads.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;
use std::time::Duration;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr as NlAddr};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

use crate::{Error, NetworkMode, Result};

/// The default address pool of project networks.
pub const DEFAULT_POOL: &str = "10.213.0.0/16";
/// The default prefix length of one project's subnet (254 addresses, 253 for workloads).
pub const DEFAULT_SUBNET_PREFIX: u8 = 24;

/// Address plan of project networks: project number `n` gets the `n`-th subnet of length
/// `subnet_prefix` of `pool`.
///
/// In each subnet the first address (`.1` of a /24) is reserved for Enclave's own gateway to
/// come and workloads get the following ones; the network and broadcast addresses are unused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    pool: Ipv4Addr,
    pool_prefix: u8,
    subnet_prefix: u8,
}

impl Default for NetConfig {
    fn default() -> Self {
        NetConfig {
            pool: Ipv4Addr::new(10, 213, 0, 0),
            pool_prefix: 16,
            subnet_prefix: DEFAULT_SUBNET_PREFIX,
        }
    }
}

impl fmt::Display for NetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pool {}/{}, subnets /{}",
            self.pool, self.pool_prefix, self.subnet_prefix
        )
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

impl NetConfig {
    /// Parses and checks a plan: `pool` in CIDR notation (`10.213.0.0/16`, no host bits set,
    /// prefix 8–30, not in 0/8, 127/8, 169.254/16 or 224/3) and the subnets' prefix length
    /// (from the pool's up to 30).
    pub fn new(pool: &str, subnet_prefix: u8) -> Result<NetConfig> {
        let bad = |why: String| Err(Error::Invalid(format!("network pool {pool:?}: {why}")));
        let Some((addr, prefix)) = pool.trim().split_once('/') else {
            return bad("write it as an IPv4 network in CIDR notation, like 10.213.0.0/16".into());
        };
        let Ok(addr) = Ipv4Addr::from_str(addr) else {
            return bad(format!("{addr:?} is not an IPv4 address"));
        };
        let Ok(prefix) = prefix.parse::<u8>() else {
            return bad(format!("{prefix:?} is not a prefix length"));
        };
        if !(8..=30).contains(&prefix) {
            return bad(format!(
                "the prefix length must be between 8 and 30, not {prefix}"
            ));
        }
        let bits = u32::from(addr);
        if bits & !mask(prefix) != 0 {
            let net = Ipv4Addr::from(bits & mask(prefix));
            return bad(format!("host bits are set; did you mean {net}/{prefix}?"));
        }
        let reserved = [
            ([0, 0, 0, 0], 8),
            ([127, 0, 0, 0], 8),
            ([169, 254, 0, 0], 16),
            ([224, 0, 0, 0], 3),
        ];
        for (net, len) in reserved {
            let net = u32::from(Ipv4Addr::from(net));
            let common = mask(prefix.min(len));
            if bits & common == net & common {
                return bad(format!(
                    "it overlaps {}/{len} (reserved: this network, loopback, link-local or multicast); choose a private range such as {DEFAULT_POOL}",
                    Ipv4Addr::from(net)
                ));
            }
        }
        if subnet_prefix < prefix || subnet_prefix > 30 {
            return Err(Error::Invalid(format!(
                "the subnet prefix length must be between the pool's ({prefix}) and 30, not {subnet_prefix}"
            )));
        }
        Ok(NetConfig {
            pool: addr,
            pool_prefix: prefix,
            subnet_prefix,
        })
    }

    /// The pool, as `(network address, prefix length)`.
    pub fn pool(&self) -> (Ipv4Addr, u8) {
        (self.pool, self.pool_prefix)
    }

    /// The prefix length of each project's subnet.
    pub fn subnet_prefix(&self) -> u8 {
        self.subnet_prefix
    }

    /// How many project subnets the pool holds.
    pub fn subnet_count(&self) -> u64 {
        1u64 << (self.subnet_prefix - self.pool_prefix)
    }

    /// The subnet of project number `index`, as `(network address, prefix length)`; an error
    /// when the pool has no such subnet.
    pub fn subnet(&self, index: u32) -> Result<(Ipv4Addr, u8)> {
        if u64::from(index) >= self.subnet_count() {
            return Err(Error::Invalid(format!(
                "project {index} has no network: the pool {}/{} holds {} subnets of /{} (projects 0 to {}); configure a larger pool or a longer subnet prefix",
                self.pool,
                self.pool_prefix,
                self.subnet_count(),
                self.subnet_prefix,
                self.subnet_count() - 1
            )));
        }
        let size = 1u32 << (32 - u32::from(self.subnet_prefix));
        Ok((
            Ipv4Addr::from(u32::from(self.pool) + index * size),
            self.subnet_prefix,
        ))
    }

    /// The workload addresses of a subnet: its host offsets `2 ..= size - 2` (offset 1 is
    /// reserved for Enclave's gateway, 0 and `size - 1` are the network and broadcast).
    fn host_offsets(&self) -> std::ops::RangeInclusive<u32> {
        let size = 1u32 << (32 - u32::from(self.subnet_prefix));
        2..=size - 2
    }
}

/// The short tag of a runtime: six hex digits of the FNV-1a hash of its runtime directory.
pub fn runtime_tag(runtime_dir: &Path) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in runtime_dir.as_os_str().as_encoded_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{:06x}", h & 0x00ff_ffff)
}

/// A workload's place on its project network (made by [`Networks::attach`]).
#[derive(Debug)]
pub struct Attachment {
    id: String,
    index: u32,
    address: Ipv4Addr,
    netns: PathBuf,
    veth: String,
    detached: bool,
}

impl Attachment {
    /// The project number.
    pub fn project_index(&self) -> u32 {
        self.index
    }
    /// The workload's address.
    pub fn address(&self) -> Ipv4Addr {
        self.address
    }
    /// The network namespace file (for the OCI spec's namespace `path`).
    pub fn netns_path(&self) -> &Path {
        &self.netns
    }
    /// The host end of the veth pair.
    pub fn veth(&self) -> &str {
        &self.veth
    }
}

#[derive(Debug, Default)]
struct Project {
    /// Host offsets in use in the subnet.
    used: BTreeSet<u32>,
}

/// The project networks of one runtime (thread-safe; every call is synchronous).
#[derive(Debug)]
pub struct Networks {
    config: NetConfig,
    tag: String,
    netns_dir: PathBuf,
    projects: Mutex<HashMap<u32, Project>>,
}

/// `sysctl -w`: writes `value` to `/proc/sys/<key>` (as seen from the calling thread's network
/// namespace). A key that does not exist is fine when `optional` (no IPv6 in the kernel).
fn sysctl(key: &str, value: &str, optional: bool) -> Result<()> {
    let path = Path::new("/proc/sys").join(key);
    match fs::write(&path, value) {
        Err(e) if optional && e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r.map_err(Error::io(format!("setting {}", path.display()))),
    }
}

fn net_err(what: String) -> impl FnOnce(io::Error) -> Error {
    Error::io(what)
}

/// Runs `f` on a new thread that has joined the network namespace `netns` (a file such as
/// `/proc/<pid>/ns/net` or a bind mount of one); the calling thread's namespace is untouched.
pub fn in_netns<T: Send + 'static>(
    netns: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    let file = File::open(netns).map_err(Error::io(format!(
        "opening the network namespace {}",
        netns.display()
    )))?;
    let shown = netns.display().to_string();
    std::thread::spawn(move || {
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| Error::Io {
            what: format!("joining the network namespace {shown}"),
            source: e.into(),
        })?;
        drop(file);
        f()
    })
    .join()
    .map_err(|_| Error::Runtime("a network namespace thread panicked".into()))?
}

/// Opens a TCP connection to `addr` from inside the network namespace `netns` and returns it.
///
/// This is how the host reaches a workload on a project network, where it has no address of
/// its own (see [`crate::Workload::connect`]). The socket belongs to the namespace it was made
/// in, so the returned stream is used from any thread like any other.
pub fn connect_in_netns(netns: &Path, addr: SocketAddrV4, timeout: Duration) -> Result<TcpStream> {
    in_netns(netns, move || {
        TcpStream::connect_timeout(&SocketAddr::V4(addr), timeout)
            .map_err(Error::io(format!("connecting to {addr}")))
    })
}

impl Networks {
    /// The networks of the runtime whose directory is `runtime_dir` (the namespace files go
    /// to `runtime_dir/netns`, created here).
    pub fn new(runtime_dir: &Path, config: NetConfig) -> Result<Networks> {
        let netns_dir = runtime_dir.join("netns");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&netns_dir)
            .map_err(Error::io(format!("creating {}", netns_dir.display())))?;
        Ok(Networks {
            config,
            tag: runtime_tag(runtime_dir),
            netns_dir,
            projects: Mutex::new(HashMap::new()),
        })
    }

    /// The address plan.
    pub fn config(&self) -> NetConfig {
        self.config
    }

    /// The interface tag of this runtime (six hex digits).
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Where the network namespace file of sandbox `id` goes.
    pub fn netns_path(&self, id: &str) -> PathBuf {
        self.netns_dir.join(id)
    }

    /// The name of project `index`'s bridge (`eb<tag><index in hex>`).
    pub fn bridge_name(&self, index: u32) -> String {
        format!("eb{}{index:x}", self.tag)
    }

    /// The name of the host end of the veth of the workload at `addr`
    /// (`ev<tag><offset of addr in the pool, in hex>`).
    pub fn veth_name(&self, addr: Ipv4Addr) -> String {
        format!(
            "ev{}{:x}",
            self.tag,
            u32::from(addr) - u32::from(self.config.pool)
        )
    }

    /// Whether `name` is one of this runtime's interfaces.
    pub fn owns_interface(&self, name: &str) -> bool {
        name.strip_prefix("eb")
            .or_else(|| name.strip_prefix("ev"))
            .is_some_and(|rest| rest.starts_with(&self.tag))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, HashMap<u32, Project>>> {
        self.projects
            .lock()
            .map_err(|_| Error::Runtime("the network table is poisoned".into()))
    }

    /// Puts sandbox `id` on the network `mode` names: `None` for [`NetworkMode::Isolated`]
    /// (runc makes a fresh namespace with only `lo`), else a namespace on the project's
    /// network (its bridge made with its first workload). Nothing is left behind on error.
    pub fn attach(&self, id: &str, mode: NetworkMode) -> Result<Option<Attachment>> {
        let NetworkMode::Project { index } = mode else {
            return Ok(None);
        };
        let (subnet, prefix) = self.config.subnet(index)?;
        let mut projects = self.lock()?;
        let project = projects.entry(index).or_default();
        let Some(offset) = self
            .config
            .host_offsets()
            .find(|o| !project.used.contains(o))
        else {
            if project.used.is_empty() {
                projects.remove(&index);
            }
            return Err(Error::Runtime(format!(
                "project {index}'s network {subnet}/{prefix} has no free address; end a workload or configure a shorter subnet prefix"
            )));
        };
        project.used.insert(offset);
        let address = Ipv4Addr::from(u32::from(subnet) + offset);
        let mut att = Attachment {
            id: id.to_string(),
            index,
            address,
            netns: self.netns_path(id),
            veth: self.veth_name(address),
            detached: false,
        };
        let made = self.plumb(&att, prefix);
        drop(projects);
        match made {
            Ok(()) => Ok(Some(att)),
            Err(e) => {
                let _ = self.detach(&mut att);
                Err(e)
            }
        }
    }

    /// Makes the namespace, the bridge if needed, the veth pair and the addresses.
    fn plumb(&self, att: &Attachment, prefix: u8) -> Result<()> {
        create_netns(&att.netns)?;
        let mut nl = Rtnl::open()?;
        let bridge = self.bridge_name(att.index);
        let br = match nl.link_index(&bridge)? {
            Some(i) => i,
            None => {
                nl.add_link(&bridge, vec![LinkInfo::Kind(InfoKind::Bridge)])
                    .map_err(net_err(format!("creating the bridge {bridge}")))?;
                sysctl(&format!("net/ipv6/conf/{bridge}/disable_ipv6"), "1", true)?;
                // The host has no address here; it also answers no ARP on it.
                sysctl(&format!("net/ipv4/conf/{bridge}/arp_ignore"), "8", false)?;
                let i = nl
                    .link_index(&bridge)?
                    .ok_or_else(|| Error::Runtime(format!("the bridge {bridge} vanished")))?;
                nl.set_link(i, true, None)
                    .map_err(net_err(format!("bringing {bridge} up")))?;
                i
            }
        };
        let ns = File::open(&att.netns).map_err(Error::io("opening the network namespace"))?;
        let mut peer = LinkMessage::default();
        peer.attributes = vec![
            LinkAttribute::IfName("eth0".into()),
            LinkAttribute::NetNsFd(ns.as_raw_fd()),
        ];
        nl.add_link(
            &att.veth,
            vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
            ],
        )
        .map_err(net_err(format!("creating the veth pair {}", att.veth)))?;
        drop(ns);
        sysctl(
            &format!("net/ipv6/conf/{}/disable_ipv6", att.veth),
            "1",
            true,
        )?;
        let v = nl
            .link_index(&att.veth)?
            .ok_or_else(|| Error::Runtime(format!("the veth {} vanished", att.veth)))?;
        nl.set_link(v, true, Some(br))
            .map_err(net_err(format!("attaching {} to {bridge}", att.veth)))?;
        let address = att.address;
        in_netns(&att.netns, move || {
            let mut nl = Rtnl::open()?;
            let lo = nl
                .link_index("lo")?
                .ok_or_else(|| Error::Runtime("no lo in the namespace".into()))?;
            nl.set_link(lo, true, None)
                .map_err(net_err("bringing lo up".into()))?;
            let eth = nl
                .link_index("eth0")?
                .ok_or_else(|| Error::Runtime("no eth0 in the namespace".into()))?;
            sysctl("net/ipv6/conf/eth0/disable_ipv6", "1", true)?;
            nl.add_address(eth, address, prefix)
                .map_err(net_err(format!("setting {address}/{prefix} on eth0")))?;
            nl.set_link(eth, true, None)
                .map_err(net_err("bringing eth0 up".into()))
        })
    }

    /// Takes a workload off its network: removes its veth and its namespace file, and the
    /// project's bridge when it was the last workload. Idempotent; reports what it could not
    /// remove.
    pub fn detach(&self, att: &mut Attachment) -> Result<()> {
        if att.detached {
            return Ok(());
        }
        let mut errors = Vec::new();
        let mut projects = self.lock()?;
        let base = self
            .config
            .subnet(att.index)
            .map_or(0, |(net, _)| u32::from(net));
        let last = match projects.get_mut(&att.index) {
            Some(p) => {
                p.used.remove(&(u32::from(att.address) - base));
                p.used.is_empty()
            }
            None => true,
        };
        match Rtnl::open() {
            Ok(mut nl) => {
                if let Err(e) = nl.del_link_named(&att.veth) {
                    errors.push(format!("removing the veth {}: {e}", att.veth));
                }
                if last {
                    let bridge = self.bridge_name(att.index);
                    if let Err(e) = nl.del_link_named(&bridge) {
                        errors.push(format!("removing the bridge {bridge}: {e}"));
                    }
                }
            }
            Err(e) => errors.push(e.to_string()),
        }
        if last {
            projects.remove(&att.index);
        }
        drop(projects);
        if let Err(e) = remove_netns(&att.netns) {
            errors.push(e);
        }
        att.detached = true;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Runtime(format!(
                "the network of sandbox {} was not fully removed ({}); remove what is named by hand",
                att.id,
                errors.join("; ")
            )))
        }
    }

    /// Removes whatever a crashed runtime with this tag and directory left: namespace files,
    /// veths and bridges. Call it before starting workloads (it does not spare live ones).
    /// Returns the names removed.
    pub fn reap(&self) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        let mut errors = Vec::new();
        if let Ok(rd) = fs::read_dir(&self.netns_dir) {
            for e in rd.flatten() {
                match remove_netns(&e.path()) {
                    Ok(()) => removed.push(e.path().display().to_string()),
                    Err(err) => errors.push(err),
                }
            }
        }
        let mut nl = Rtnl::open()?;
        let links = nl.links().map_err(net_err("listing the links".into()))?;
        // Veths first: a bridge goes once its ports are gone.
        let mut ours: Vec<(u32, String)> = links
            .into_iter()
            .filter(|(_, n)| self.owns_interface(n))
            .collect();
        ours.sort_by_key(|(_, n)| !n.starts_with("ev"));
        for (i, name) in ours {
            match nl.del_link(i) {
                Ok(()) => removed.push(name),
                // Removing a veth removes its peer; a namespace's end may go with it.
                Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => {}
                Err(e) => errors.push(format!("removing {name}: {e}")),
            }
        }
        self.lock()?.clear();
        if errors.is_empty() {
            Ok(removed)
        } else {
            Err(Error::Runtime(format!(
                "leftover networks were not fully removed ({}); remove what is named by hand",
                errors.join("; ")
            )))
        }
    }

    /// The names of this runtime's interfaces in the host's namespace (bridges and veths).
    pub fn interfaces(&self) -> Result<Vec<String>> {
        let mut nl = Rtnl::open()?;
        Ok(nl
            .links()
            .map_err(net_err("listing the links".into()))?
            .into_iter()
            .map(|(_, n)| n)
            .filter(|n| self.owns_interface(n))
            .collect())
    }
}

/// Creates a network namespace and bind-mounts it at `path`. The namespace is made by
/// `unshare(CLONE_NEWNET)` on a thread of its own, which ends right after: only that thread
/// ever was in it. Its IPv6 is disabled before any interface arrives.
fn create_netns(path: &Path) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                Error::Invalid(format!(
                    "a network namespace for {} exists already; pick another sandbox id",
                    path.display()
                ))
            } else {
                Error::io(format!("creating {}", path.display()))(e)
            }
        })?;
    let target = path.to_path_buf();
    let made = std::thread::spawn(move || -> Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(|e| Error::Io {
            what: "creating a network namespace".into(),
            source: e.into(),
        })?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|e| Error::Io {
            what: format!(
                "bind-mounting the network namespace at {}",
                target.display()
            ),
            source: e.into(),
        })?;
        // /proc/sys/net shows the namespace of the thread that opens it: this one's.
        sysctl("net/ipv6/conf/all/disable_ipv6", "1", true)?;
        sysctl("net/ipv6/conf/default/disable_ipv6", "1", true)
    })
    .join()
    .map_err(|_| Error::Runtime("the network namespace thread panicked".into()))?;
    if made.is_err() {
        let _ = remove_netns(path);
    }
    made
}

/// Unmounts (lazily) and removes a namespace file; fine when it is gone already.
fn remove_netns(path: &Path) -> std::result::Result<(), String> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(format!("unmounting {}: {e}", path.display())),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("removing {}: {e}", path.display())),
    }
}

/// A synchronous rtnetlink socket, in the namespace of the thread that opened it.
struct Rtnl {
    sock: Socket,
    seq: u32,
}

impl Rtnl {
    fn open() -> Result<Rtnl> {
        let mut sock = Socket::new(NETLINK_ROUTE).map_err(Error::io("opening a netlink socket"))?;
        sock.bind_auto()
            .map_err(Error::io("binding a netlink socket"))?;
        sock.connect(&NlAddr::new(0, 0))
            .map_err(Error::io("connecting a netlink socket"))?;
        Ok(Rtnl { sock, seq: 0 })
    }

    /// Sends one request; returns the messages of the answer (a dump's, or none for an ack).
    fn request(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags | if dump { 0 } else { NLM_F_ACK };
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        packet.finalize();
        let mut buf = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut out = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut at = 0;
            while at + 16 <= data.len() {
                let len = u32::from_ne_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
                    as usize;
                if len < 16 || at + len > data.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "bad netlink message length",
                    ));
                }
                let chunk = &data[at..at + len];
                at += (len + 3) & !3;
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(chunk)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return match e.code {
                            None => Ok(out),
                            Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                        };
                    }
                    NetlinkPayload::InnerMessage(m) => out.push(m),
                    _ => {}
                }
            }
        }
    }

    /// The index of link `name`, or `None`.
    fn link_index(&mut self, name: &str) -> Result<Option<u32>> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        match self.request(RouteNetlinkMessage::GetLink(m), 0) {
            Ok(msgs) => Ok(msgs.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => Ok(None),
            Err(e) => Err(Error::io(format!("looking up the link {name}"))(e)),
        }
    }

    /// Every link of the namespace: (index, name).
    fn links(&mut self) -> io::Result<Vec<(u32, String)>> {
        let msgs = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(msgs
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => l.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some((l.header.index, n.clone())),
                    _ => None,
                }),
                _ => None,
            })
            .collect())
    }

    fn add_link(&mut self, name: &str, info: Vec<LinkInfo>) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.attributes.push(LinkAttribute::IfName(name.to_string()));
        m.attributes.push(LinkAttribute::LinkInfo(info));
        self.request(RouteNetlinkMessage::NewLink(m), NLM_F_CREATE | NLM_F_EXCL)
            .map(drop)
    }

    fn set_link(&mut self, index: u32, up: bool, controller: Option<u32>) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        if up {
            m.header.flags = LinkFlags::Up;
            m.header.change_mask = LinkFlags::Up;
        }
        if let Some(c) = controller {
            m.attributes.push(LinkAttribute::Controller(c));
        }
        self.request(RouteNetlinkMessage::SetLink(m), 0).map(drop)
    }

    fn del_link(&mut self, index: u32) -> io::Result<()> {
        let mut m = LinkMessage::default();
        m.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(m), 0).map(drop)
    }

    /// Removes link `name`; fine when there is none.
    fn del_link_named(&mut self, name: &str) -> std::result::Result<(), String> {
        match self.link_index(name) {
            Ok(None) => Ok(()),
            Ok(Some(i)) => match self.del_link(i) {
                Ok(()) => Ok(()),
                Err(e) if e.raw_os_error() == Some(nix::libc::ENODEV) => Ok(()),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        }
    }

    fn add_address(&mut self, index: u32, addr: Ipv4Addr, prefix: u8) -> io::Result<()> {
        let mut m = AddressMessage::default();
        m.header.family = AddressFamily::Inet;
        m.header.prefix_len = prefix;
        m.header.scope = AddressScope::Universe;
        m.header.index = index;
        let bcast = Ipv4Addr::from(u32::from(addr) | !mask(prefix));
        m.attributes = vec![
            AddressAttribute::Local(addr.into()),
            AddressAttribute::Address(addr.into()),
            AddressAttribute::Broadcast(bcast),
        ];
        self.request(
            RouteNetlinkMessage::NewAddress(m),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn default_plan() {
        let c = NetConfig::default();
        assert_eq!(
            c,
            NetConfig::new(DEFAULT_POOL, DEFAULT_SUBNET_PREFIX).unwrap()
        );
        assert_eq!(c.subnet_count(), 256);
        assert_eq!(c.subnet(0).unwrap(), (Ipv4Addr::new(10, 213, 0, 0), 24));
        assert_eq!(c.subnet(7).unwrap(), (Ipv4Addr::new(10, 213, 7, 0), 24));
        assert_eq!(c.subnet(255).unwrap(), (Ipv4Addr::new(10, 213, 255, 0), 24));
        let e = c.subnet(256).unwrap_err().to_string();
        assert!(e.contains("no network") && e.contains("0 to 255"), "{e}");
        assert_eq!(c.host_offsets(), 2..=254);
    }

    #[test]
    fn other_plans() {
        let c = NetConfig::new("172.20.0.0/14", 28).unwrap();
        assert_eq!(c.subnet_count(), 1 << 14);
        assert_eq!(c.subnet(17).unwrap(), (Ipv4Addr::new(172, 20, 1, 16), 28));
        assert_eq!(c.host_offsets(), 2..=14);
        let one = NetConfig::new("192.168.7.0/24", 24).unwrap();
        assert_eq!(one.subnet_count(), 1);
        assert!(one.subnet(1).is_err());
    }

    #[test]
    fn bad_plans_say_why() {
        for (pool, sub, want) in [
            ("10.213.0.0", 24, "CIDR"),
            ("10.213.0/16", 24, "not an IPv4 address"),
            ("10.213.0.0/x", 24, "not a prefix length"),
            ("10.0.0.0/4", 24, "between 8 and 30"),
            ("10.0.0.0/31", 31, "between 8 and 30"),
            ("10.213.1.0/16", 24, "did you mean 10.213.0.0/16"),
            ("127.0.0.0/8", 24, "127.0.0.0/8"),
            ("169.254.0.0/16", 24, "169.254.0.0/16"),
            ("169.0.0.0/8", 24, "169.254.0.0/16"),
            ("224.0.0.0/8", 24, "224.0.0.0/3"),
            ("10.213.0.0/16", 8, "subnet prefix"),
            ("10.213.0.0/16", 31, "subnet prefix"),
        ] {
            let e = NetConfig::new(pool, sub).unwrap_err().to_string();
            assert!(e.contains(want), "{pool} /{sub}: {e}");
        }
    }

    #[test]
    fn names_fit_and_carry_the_tag() {
        let dir = Path::new("/dev/shm/enclave-sandbox");
        let tag = runtime_tag(dir);
        assert_eq!(tag.len(), 6);
        assert_eq!(tag, runtime_tag(dir), "stable");
        assert_ne!(tag, runtime_tag(Path::new("/dev/shm/enclave-sandbox-2")));
        let n = Networks {
            config: NetConfig::new("10.0.0.0/8", 30).unwrap(),
            tag: tag.clone(),
            netns_dir: dir.join("netns"),
            projects: Mutex::new(HashMap::new()),
        };
        let last = n
            .config
            .subnet(u32::try_from(n.config.subnet_count() - 1).unwrap())
            .unwrap()
            .0;
        let veth = n.veth_name(Ipv4Addr::from(u32::from(last) + 2));
        let bridge = n.bridge_name(u32::try_from(n.config.subnet_count() - 1).unwrap());
        for name in [&veth, &bridge] {
            assert!(name.len() <= 15, "{name} is longer than IFNAMSIZ - 1");
            assert!(n.owns_interface(name), "{name}");
        }
        assert!(!n.owns_interface("eth0"));
        assert!(!n.owns_interface(&format!("eb{}1", runtime_tag(Path::new("/other")))));
    }
}
