//! Raw `wasi:sockets`, as linked: creating a TCP or UDP socket and name lookup are
//! refused for every plugin (a plugin reaches the network only through wasi:http and
//! its allowlist), and each refusal is named in the host log. No OS socket is created
//! for a refused request, so a plugin cannot use up the host's file descriptors.

use super::denials::Denials;
use super::state::CallState;
use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::ip_name_lookup::{
    self, HostResolveAddressStream, ResolveAddressStream,
};
use wasmtime_wasi::p2::bindings::sockets::network::{
    self, ErrorCode, IpAddress, IpAddressFamily, Network,
};
use wasmtime_wasi::p2::bindings::sockets::{tcp_create_socket, udp_create_socket};
use wasmtime_wasi::p2::{DynPollable, SocketError, SocketResult, TcpSocket, UdpSocket};
use wasmtime_wasi::sockets::{WasiSocketsCtxView, WasiSocketsView};

/// Replaces wasmtime-wasi's socket creation and name lookup in `linker` (already
/// holding all of WASI) with refusals that are logged.
pub fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = tcp_create_socket::add_to_linker::<CallState, Refused>(linker, refused)
        .and_then(|()| udp_create_socket::add_to_linker::<CallState, Refused>(linker, refused))
        .and_then(|()| ip_name_lookup::add_to_linker::<CallState, Refused>(linker, refused));
    linker.allow_shadowing(false);
    linked
}

struct Refused;

impl HasData for Refused {
    type Data<'a> = RefusedSockets<'a>;
}

fn refused(state: &mut CallState) -> RefusedSockets<'_> {
    RefusedSockets {
        inner: state.wasi.sockets(),
        denials: &state.denials,
    }
}

/// One call's sockets: nothing can be created, and each attempt is logged.
pub struct RefusedSockets<'a> {
    inner: WasiSocketsCtxView<'a>,
    denials: &'a Denials,
}

fn family(family: IpAddressFamily) -> &'static str {
    match family {
        IpAddressFamily::Ipv4 => "ipv4",
        IpAddressFamily::Ipv6 => "ipv6",
    }
}

/// How socket errors reach the guest: as wasmtime-wasi does it.
impl network::Host for RefusedSockets<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.inner, error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.inner, err)
    }
}

impl network::HostNetwork for RefusedSockets<'_> {
    fn drop(&mut self, network: Resource<Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.inner, network)
    }
}

impl tcp_create_socket::Host for RefusedSockets<'_> {
    fn create_tcp_socket(
        &mut self,
        address_family: IpAddressFamily,
    ) -> SocketResult<Resource<TcpSocket>> {
        self.denials.refuse(
            "tcp",
            format_args!("{} socket", family(address_family)),
            "raw TCP socket: plugins reach the network only through HTTP",
        );
        Err(ErrorCode::AccessDenied.into())
    }
}

impl udp_create_socket::Host for RefusedSockets<'_> {
    async fn create_udp_socket(
        &mut self,
        address_family: IpAddressFamily,
    ) -> SocketResult<Resource<UdpSocket>> {
        self.denials.refuse(
            "udp",
            format_args!("{} socket", family(address_family)),
            "raw UDP socket: plugins reach the network only through HTTP",
        );
        Err(ErrorCode::AccessDenied.into())
    }
}

impl ip_name_lookup::Host for RefusedSockets<'_> {
    fn resolve_addresses(
        &mut self,
        _network: Resource<Network>,
        name: String,
    ) -> Result<Resource<ResolveAddressStream>, SocketError> {
        self.denials.refuse(
            "dns",
            &name,
            "name lookup: the host resolves names for HTTP requests itself",
        );
        Err(ErrorCode::AccessDenied.into())
    }
}

/// No stream is ever created; these only keep the resource type complete.
impl HostResolveAddressStream for RefusedSockets<'_> {
    fn resolve_next_address(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> Result<Option<IpAddress>, SocketError> {
        self.inner.resolve_next_address(stream)
    }

    fn subscribe(
        &mut self,
        stream: Resource<ResolveAddressStream>,
    ) -> wasmtime::Result<Resource<DynPollable>> {
        self.inner.subscribe(stream)
    }

    fn drop(&mut self, stream: Resource<ResolveAddressStream>) -> wasmtime::Result<()> {
        HostResolveAddressStream::drop(&mut self.inner, stream)
    }
}
