import ConflictScope
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A message waiting to be published and confirmed.
struct OutgoingMessage: Sendable {
    var body: [UInt8]
    var queue: String
    var headers: [String: String]
    var expiration: String?
    var continuation: CheckedContinuation<Void, any Error>
}

/// A consumer to start: the stream it feeds and the caller waiting for basic.consume-ok.
struct ConsumeRequest: Sendable {
    var tag: String
    var queue: String
    var prefetch: UInt16
    var stream: AsyncStream<Delivery>.Continuation
    var started: CheckedContinuation<Void, any Error>
}

/// Work that Swift code hands to the connection's thread.
enum BrokerCommand: Sendable {
    case publish(OutgoingMessage)
    case ack(tag: UInt64, generation: UInt64, done: CheckedContinuation<Void, Never>)
    case reject(tag: UInt64, generation: UInt64, requeue: Bool, done: CheckedContinuation<Void, Never>)
    case declare([QueueSpec], CheckedContinuation<Void, any Error>)
    case queueState(String, CheckedContinuation<(messages: Int, consumers: Int)?, any Error>)
    case deleteQueue(String, CheckedContinuation<Void, any Error>)
    case consume(ConsumeRequest)
    case cancelConsumer(tag: String)
    case stopConsuming(CheckedContinuation<Void, Never>)

    /// Completes the command without doing it, because the connection is closed for good.
    func abandon() {
        switch self {
        case .publish(let message): message.continuation.resume(throwing: BrokerError.connectionClosed)
        case .ack(_, _, let done), .reject(_, _, _, let done): done.resume()
        case .declare(_, let continuation), .deleteQueue(_, let continuation):
            continuation.resume(throwing: BrokerError.connectionClosed)
        case .queueState(_, let continuation): continuation.resume(throwing: BrokerError.connectionClosed)
        case .consume(let request):
            request.stream.finish()
            request.started.resume(throwing: BrokerError.connectionClosed)
        case .cancelConsumer: break
        case .stopConsuming(let done): done.resume()
        }
    }
}

/// The state shared between Swift callers and the connection's thread: a command queue, flags, and a pipe
/// that wakes the thread from its poll as soon as a command arrives.
final class BrokerMailbox: @unchecked Sendable {
    // @unchecked Sendable: every mutable field is read and written only while holding `lock`; the pipe
    // descriptors are immutable after init, and writes to / reads from a pipe are thread-safe.
    private let lock = NSLock()
    private var commands: [BrokerCommand] = []
    private var closeRequested = false
    private var finished = false
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []
    private var connected = false
    private var consumerCount = 0
    private let wakeReadFD: Int32
    private let wakeWriteFD: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        }
        wakeReadFD = fds[0]
        wakeWriteFD = fds[1]
    }

    deinit {
        if wakeReadFD >= 0 { close(wakeReadFD) }
        if wakeWriteFD >= 0 { close(wakeWriteFD) }
    }

    // MARK: Swift side

    /// Queues a command for the thread, or completes it with `connectionClosed` after `close()`.
    func send(_ command: BrokerCommand) {
        lock.lock()
        if closeRequested {
            lock.unlock()
            command.abandon()
            return
        }
        commands.append(command)
        lock.unlock()
        wake()
    }

    func requestClose() {
        lock.lock()
        closeRequested = true
        lock.unlock()
        wake()
    }

    /// Returns once the thread has closed the connection and exited.
    func waitUntilFinished() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            lock.lock()
            if finished {
                lock.unlock()
                continuation.resume()
            } else {
                finishWaiters.append(continuation)
                lock.unlock()
            }
        }
    }

    var isConnected: Bool {
        get { lock.withLock { connected } }
        set { lock.withLock { connected = newValue } }
    }

    func nextConsumerNumber() -> Int {
        lock.withLock {
            consumerCount += 1
            return consumerCount
        }
    }

    // MARK: Thread side

    var isCloseRequested: Bool { lock.withLock { closeRequested } }

    var wakeDescriptor: Int32 { wakeReadFD }

    func takeCommands() -> [BrokerCommand] {
        lock.withLock {
            let taken = commands
            commands.removeAll(keepingCapacity: true)
            return taken
        }
    }

    /// Refuses further commands (they complete with `connectionClosed`) and returns the ones still queued.
    func closeAndTakeCommands() -> [BrokerCommand] {
        lock.withLock {
            closeRequested = true
            connected = false
            let leftovers = commands
            commands = []
            return leftovers
        }
    }

    /// Called last by the thread: wakes everyone waiting in `waitUntilFinished`.
    func markFinished() {
        let waiters = lock.withLock {
            finished = true
            let waiters = finishWaiters
            finishWaiters = []
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    func wake() {
        var byte: UInt8 = 1
        _ = write(wakeWriteFD, &byte, 1)
    }

    func drainWakeups() {
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(wakeReadFD, &buffer, buffer.count) > 0 {}
    }
}
