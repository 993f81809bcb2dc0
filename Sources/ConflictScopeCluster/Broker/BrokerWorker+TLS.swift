import CRabbitMQ
import ConflictScope

/// Why a TLS socket could not be set up; names files, never credentials.
struct TLSSetupProblem: Error, CustomStringConvertible {
    let description: String
}

extension BrokerWorker {
    /// An OpenSSL socket owned by `state`, configured from `tls`: TLS 1.2 or later, the CA file or else the
    /// system CAs, an optional client certificate, peer and host-name verification unless turned off.
    /// Files are read again at every connect, so replaced certificates take effect on the next reconnect.
    func makeTLSSocket(_ state: amqp_connection_state_t, _ tls: BrokerSettings.TLS) -> Result<
        OpaquePointer, TLSSetupProblem
    > {
        guard let socket = amqp_ssl_socket_new(state) else {
            return .failure(TLSSetupProblem(description: "cannot create a TLS socket (OpenSSL initialisation failed)"))
        }
        guard crabbitmq_ssl_require_tls12(socket) == 1 else {
            return .failure(TLSSetupProblem(description: "cannot require TLS 1.2 or later"))
        }
        if let file = tls.caCertificateFile {
            guard amqp_ssl_socket_set_cacert(socket, file) == AMQP_STATUS_OK.rawValue else {
                return .failure(TLSSetupProblem(description: "cannot read CA certificates from \(file)"))
            }
        } else if crabbitmq_ssl_trust_system_cas(socket) != 1 {
            return .failure(TLSSetupProblem(description: "cannot load the system's CA certificates"))
        }
        if let certificate = tls.certificateFile, let key = tls.keyFile {
            guard amqp_ssl_socket_set_key(socket, certificate, key) == AMQP_STATUS_OK.rawValue else {
                return .failure(
                    TLSSetupProblem(
                        description: "cannot load the client certificate \(certificate) with its key \(key)"))
            }
        }
        let verify: amqp_boolean_t = tls.verifyPeer ? 1 : 0
        amqp_ssl_socket_set_verify_peer(socket, verify)
        amqp_ssl_socket_set_verify_hostname(socket, verify)
        return .success(socket)
    }

    /// A one-line reason for a failed TLS open, or nil when the failure was not TLS's (TCP, DNS, timeout).
    func tlsFailureText(_ status: Int32, _ tls: BrokerSettings.TLS) -> String? {
        let trusted = tls.caCertificateFile.map { "the CA file \($0)" } ?? "the system's CAs"
        switch status {
        case AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue:
            return "the broker's certificate is not signed by \(trusted) (or has expired)"
        case AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue:
            return "the broker's certificate does not name the host \(settings.host)"
        case AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue, AMQP_STATUS_SSL_ERROR.rawValue:
            return "TLS handshake failed (is the port a TLS port? does the broker require a client certificate?)"
        default:
            return nil
        }
    }
}
