import ConflictScope
import Foundation
import Logging
import Testing

@testable import ConflictScopeCluster

/// BrokerConnection against the real RabbitMQ at CONFLICTSCOPE_AMQP_URL. Serialized: one test restarts the
/// broker, which would turn the others' exactly-once expectations into at-least-once.
@Suite("Broker connection on real RabbitMQ", .serialized)
struct BrokerTests {
    static let url = amqpURL

    static func connect(_ name: String) throws -> BrokerConnection {
        BrokerConnection(settings: try BrokerSettings(url: url), name: name, logger: Logger(label: "broker-test"))
    }

    static func queueName(_ purpose: String) -> String {
        "test.broker.\(purpose).\(UUID().uuidString.prefix(8).lowercased())"
    }

    @Test("2,000 pipelined publishes are confirmed and consumed exactly once", .timeLimit(.minutes(1)))
    func publishAndConsumeMany() async throws {
        let broker = try Self.connect("many")
        let queue = Self.queueName("many")
        try await broker.declare([QueueSpec(name: queue)])
        let stream = try await broker.consume(queue, prefetch: 50)
        let tally = Tally()
        let reader = Task {
            for await delivery in stream {
                await tally.add(delivery)
                await broker.ack(delivery)
            }
        }

        let count = 2_000
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<count {
                group.addTask { try await broker.publish(Array("message \(index)".utf8), to: queue) }
            }
            try await group.waitForAll()
        }
        #expect(await eventually { await tally.distinct == count })

        await broker.stopConsuming()
        await reader.value  // the stream finishes once the cancel is confirmed
        let counts = await tally.counts
        #expect(counts.count == count)
        #expect(counts.values.allSatisfy { $0 == 1 })
        #expect(Set(counts.keys) == Set((0..<count).map { "message \($0)" }))
        #expect(try await broker.queueState(queue)?.messages == 0)

        try await broker.deleteQueue(queue)
        #expect(try await broker.queueState(queue) == nil)
        await broker.close()
    }

    @Test("Headers survive; requeue redelivers; reject without requeue dead-letters", .timeLimit(.minutes(1)))
    func headersRedeliveryAndDeadLetter() async throws {
        let broker = try Self.connect("reject")
        let work = Self.queueName("work")
        let dead = Self.queueName("dead")
        try await broker.declare([QueueSpec(name: dead), QueueSpec(name: work, deadLetterTo: dead)])
        let payload = Array("payload".utf8)
        try await broker.publish(payload, to: work, headers: ["x-attempt": "3", "x-note": "héllo"])

        let inbox = Inbox()
        let reader = inbox.fill(from: try await broker.consume(work, prefetch: 1))
        let first = try #require(await inbox.next())
        #expect(first.queue == work)
        #expect(first.body == payload)
        #expect(first.headers["x-attempt"] == "3")
        #expect(first.headers["x-note"] == "héllo")
        #expect(!first.redelivered)

        await broker.reject(first, requeue: true)
        let second = try #require(await inbox.next())
        #expect(second.body == payload)
        #expect(second.redelivered)
        #expect(second.headers["x-attempt"] == "3")

        await broker.reject(second, requeue: false)
        let deadInbox = Inbox()
        let deadReader = deadInbox.fill(from: try await broker.consume(dead, prefetch: 1))
        let third = try #require(await deadInbox.next())
        #expect(third.queue == dead)
        #expect(third.body == payload)
        #expect(third.headers["x-attempt"] == "3")
        #expect(third.headers["x-first-death-reason"] == "rejected")
        #expect(third.headers["x-first-death-queue"] == work)
        await broker.ack(third)

        await broker.stopConsuming()
        await reader.value
        await deadReader.value
        #expect(try await broker.queueState(work)?.messages == 0)
        #expect(try await broker.queueState(dead)?.messages == 0)
        try await broker.deleteQueue(work)
        try await broker.deleteQueue(dead)
        await broker.close()
    }

    @Test("An expired message moves to the dead-letter queue (delayed retry)", .timeLimit(.minutes(1)))
    func expirationIntoDeadLetterQueue() async throws {
        let broker = try Self.connect("delay")
        let target = Self.queueName("target")
        let delay = Self.queueName("delay")
        try await broker.declare([QueueSpec(name: target), QueueSpec(name: delay, deadLetterTo: target)])
        let inbox = Inbox()
        let reader = inbox.fill(from: try await broker.consume(target, prefetch: 10))

        try await broker.publish(
            Array("retry me".utf8), to: delay, headers: ["x-attempt": "1"], expirationMilliseconds: 200)
        let arrived = try #require(await inbox.next(within: 10))
        #expect(arrived.queue == target)
        #expect(arrived.body == Array("retry me".utf8))
        #expect(arrived.headers["x-attempt"] == "1")
        #expect(arrived.headers["x-first-death-reason"] == "expired")
        await broker.ack(arrived)
        #expect(try await broker.queueState(delay)?.messages == 0)

        await broker.stopConsuming()
        await reader.value
        try await broker.deleteQueue(delay)
        try await broker.deleteQueue(target)
        await broker.close()
    }

    @Test("Missing queues: nil state, consume throws, and the connection keeps working", .timeLimit(.minutes(1)))
    func missingQueues() async throws {
        let broker = try Self.connect("missing")
        let missing = Self.queueName("missing")
        #expect(try await broker.queueState(missing) == nil)
        await #expect(throws: BrokerError.queueNotFound) { _ = try await broker.consume(missing, prefetch: 1) }
        try await broker.deleteQueue(missing)

        let queue = Self.queueName("present")
        try await broker.declare([QueueSpec(name: queue)])
        await #expect(throws: BrokerError.operationRefused) {
            try await broker.declare([QueueSpec(name: queue, deadLetterTo: missing)])
        }
        try await broker.publish([1, 2, 3], to: queue)
        let inbox = Inbox()
        let reader = inbox.fill(from: try await broker.consume(queue, prefetch: 1))
        let delivery = try #require(await inbox.next())
        #expect(delivery.body == [1, 2, 3])
        #expect(delivery.headers.isEmpty)
        await broker.ack(delivery)
        #expect(try await broker.queueState(queue)?.consumers == 1)

        await broker.stopConsuming()
        await reader.value
        try await broker.deleteQueue(queue)
        await broker.close()
        await #expect(throws: BrokerError.connectionClosed) { try await broker.publish([1], to: queue) }
    }

    /// Publishes are mandatory: a message to no queue fails its publisher instead of vanishing.
    @Test("A message to no queue fails its publish", .timeLimit(.minutes(1)))
    func unroutableMessagesFail() async throws {
        let broker = try Self.connect("unroutable")
        let queue = Self.queueName("routed")
        try await broker.declare([QueueSpec(name: queue)])
        await #expect(throws: BrokerError.unroutable) { try await broker.publish([1], to: Self.queueName("nowhere")) }
        // Pipelined with routable ones, only the unroutable one fails.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<50 { group.addTask { try await broker.publish([UInt8(index)], to: queue) } }
            try await group.waitForAll()
        }
        #expect(try await broker.queueState(queue)?.messages == 50)
        try await broker.deleteQueue(queue)
        await broker.close()
    }

    /// No message over the size limit is ever sent; and when the broker refuses one anyway (a client set to
    /// a larger limit than the broker's 16 MiB), that publish fails once instead of being re-published for
    /// ever, and the connection goes on.
    @Test("Messages over the size limit fail, on either side", .timeLimit(.minutes(1)))
    func oversizedMessagesFail() async throws {
        let broker = try Self.connect("oversized")
        let queue = Self.queueName("sized")
        try await broker.declare([QueueSpec(name: queue)])
        let big = [UInt8](repeating: 7, count: 16 * 1024 * 1024 + 1)
        await #expect(throws: BrokerError.messageTooLarge) { try await broker.publish(big, to: queue) }

        var settings = try BrokerSettings(url: Self.url)
        settings.maxMessageBytes = 64 * 1024 * 1024
        let lax = BrokerConnection(settings: settings, name: "lax", logger: Logger(label: "broker-test"))
        // (Before, the refused message was published again after every reconnect: this never returned.)
        await #expect(throws: BrokerError.operationRefused) { try await lax.publish(big, to: queue) }
        try await lax.publish([1, 2, 3], to: queue)
        #expect(try await broker.queueState(queue)?.messages == 1)
        try await broker.deleteQueue(queue)
        await lax.close()
        await broker.close()
    }

    @Test("A broker restart loses nothing: confirms, re-publish, re-consume", .timeLimit(.minutes(2)))
    func survivesBrokerRestart() async throws {
        let broker = try Self.connect("restart")
        let queue = Self.queueName("restart")
        try await broker.declare([QueueSpec(name: queue)])
        let stream = try await broker.consume(queue, prefetch: 20)
        let tally = Tally()
        let reader = Task {
            for await delivery in stream {
                await tally.add(delivery)
                await broker.ack(delivery)
            }
        }

        // Publish batches of 10 every 50 ms; restart the broker after the fifth batch and keep publishing until
        // five more batches went out after the restart script returned (the script takes about 8 s).
        let restart = RestartState()
        let deadline = ContinuousClock.now + .seconds(60)
        var published = 0
        var batchesAfterRestart = 0
        while batchesAfterRestart < 5 && ContinuousClock.now < deadline {
            let first = published
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in first..<(first + 10) {
                    group.addTask { try await broker.publish(Array("message \(index)".utf8), to: queue) }
                }
                try await group.waitForAll()
            }
            published += 10
            if published == 50 {
                Task {
                    let status = (try? await runScript("servers", ["restart", "rabbitmq"], timeout: 90).0) ?? -1
                    await tally.markRestartFinished()
                    await restart.finish(status)
                }
            }
            if await restart.status != nil { batchesAfterRestart += 1 }
            try await Task.sleep(for: .milliseconds(50))
        }
        let restartStatus = await restart.status
        #expect(restartStatus == 0)

        let expected = Set((0..<published).map { "message \($0)" })
        #expect(await eventually(within: 30) { await tally.distinct == published })
        #expect(Set(await tally.counts.keys) == expected)
        #expect(await tally.deliveriesAfterRestart > 0)
        #expect(await tally.generations.count >= 2)
        #expect(broker.isConnected)

        await broker.stopConsuming()
        await reader.value
        try await broker.deleteQueue(queue)
        await broker.close()
    }

    @Test("An idle connection outlives several heartbeat timeouts", .timeLimit(.minutes(1)))
    func idleConnectionStaysUp() async throws {
        var settings = try BrokerSettings(url: Self.url)
        settings.heartbeatSeconds = 1
        let broker = BrokerConnection(settings: settings, name: "idle", logger: Logger(label: "broker-test"))
        let queue = Self.queueName("idle")
        try await broker.declare([QueueSpec(name: queue)])
        let inbox = Inbox()
        let reader = inbox.fill(from: try await broker.consume(queue, prefetch: 10))
        try await broker.publish(Array("before".utf8), to: queue)
        let first = try #require(await inbox.next())

        // The broker drops a connection that misses two heartbeats (2 s here); the thread's polling answers them.
        try await Task.sleep(for: .seconds(4))
        #expect(broker.isConnected)
        try await broker.publish(Array("after".utf8), to: queue)
        let second = try #require(await inbox.next())
        #expect(second.generation == first.generation)  // no reconnect in between
        await broker.ack(first)
        await broker.ack(second)

        reader.cancel()  // ending the iteration cancels the consumer
        #expect(await eventually(within: 10) { (try? await broker.queueState(queue))?.consumers == 0 })
        #expect(try await broker.queueState(queue)?.messages == 0)
        try await broker.deleteQueue(queue)
        await broker.close()
    }

    @Test("URLs parse; bad ones are refused without showing the password")
    func settingsFromURL() throws {
        let plain = try BrokerSettings(url: "amqp://guest:guest@127.0.0.1:5672/")
        #expect(plain.host == "127.0.0.1")
        #expect(plain.port == 5672)
        #expect(plain.user == "guest")
        #expect(plain.password == "guest")
        #expect(plain.vhost == "/")
        #expect(plain.heartbeatSeconds == 30)

        let encoded = try BrokerSettings(url: "amqp://svc:p%40ss%2Fw0rd@rabbit.internal/%2Fprod?heartbeat=10")
        #expect(encoded.user == "svc")
        #expect(encoded.password == "p@ss/w0rd")
        #expect(encoded.host == "rabbit.internal")
        #expect(encoded.port == 5672)
        #expect(encoded.vhost == "/prod")
        #expect(encoded.heartbeatSeconds == 10)
        #expect(!encoded.description.contains("p@ss") && !encoded.description.contains("w0rd"))
        #expect(encoded.description == "amqp://svc:***@rabbit.internal:5672/%2Fprod")

        let defaults = try BrokerSettings(url: "amqp://rabbit")
        #expect(defaults.user == "guest" && defaults.password == "guest" && defaults.vhost == "/")
        let ipv6 = try BrokerSettings(url: "amqp://u:secretpw@[::1]:5673/jobs")
        #expect(ipv6.host == "::1" && ipv6.port == 5673 && ipv6.vhost == "jobs")
        #expect(!ipv6.description.contains("secretpw"))

        // amqps: TLS on 5671, verified against the system CAs unless a CA file is named.
        let managed = try BrokerSettings(url: "amqps://u:secretpw@b-1.mq.example.com/prod")
        #expect(managed.port == 5671 && managed.tls == BrokerSettings.TLS())
        #expect(managed.tls?.verifyPeer == true && managed.tls?.caCertificateFile == nil)
        #expect(managed.description == "amqps://u:***@b-1.mq.example.com:5671/prod")
        let own = try BrokerSettings(
            url: "amqps://u:secretpw@rabbit:5671/cs?cacertfile=/tls/ca.crt&certfile=/tls/c.crt&keyfile=/tls/c.key")
        #expect(
            own.tls
                == BrokerSettings.TLS(
                    caCertificateFile: "/tls/ca.crt", certificateFile: "/tls/c.crt", keyFile: "/tls/c.key"))
        #expect(try BrokerSettings(url: "amqps://h/?verify=verify_none").tls?.verifyPeer == false)
        #expect(try BrokerSettings(url: "amqp://h/").tls == nil)

        let bad = [
            "", "rabbit:5672", "http://u:secretpw@h/", "amqp://u:secretpw@:5672/",
            "amqp://u:secretpw@h:99999/", "amqp://u:secretpw@h:0/", "amqp://u:secretpw@h:abc/",
            "amqp://u:secret%zzpw@h/", "amqp://u:secretpw@h/a/b", "amqp://:secretpw@h/",
            "amqp://u:secretpw@h/?heartbeat=-1", "amqp://u:secretpw@h/?secretpw=1", "amqp://u:secretpw@[::1/",
            // TLS parameters need amqps, a value, both halves of a client certificate, a known verify mode.
            "amqp://u:secretpw@h/?cacertfile=/ca.pem", "amqps://u:secretpw@h/?cacertfile=",
            "amqps://u:secretpw@h/?certfile=/c.pem", "amqps://u:secretpw@h/?verify=secretpw",
        ]
        for url in bad {
            do {
                _ = try BrokerSettings(url: url)
                Issue.record("accepted a bad URL (#\(bad.firstIndex(of: url)!))")
            } catch let error as BrokerError {
                #expect(error == .invalidSettings)
                #expect(!error.description.contains("secret"))
                #expect(!error.description.contains("\n"))
            }
        }
    }
}

/// What a reader has received, by body.
private actor Tally {
    private(set) var counts: [String: Int] = [:]
    private(set) var generations: Set<UInt64> = []
    private(set) var deliveriesAfterRestart = 0
    private var restartFinished = false

    var distinct: Int { counts.count }

    func add(_ delivery: Delivery) {
        counts[String(decoding: delivery.body, as: UTF8.self), default: 0] += 1
        generations.insert(delivery.generation)
        if restartFinished { deliveriesAfterRestart += 1 }
    }

    func markRestartFinished() { restartFinished = true }
}

/// Deliveries read from a stream by a background task, taken one at a time.
private actor Inbox {
    private var items: [Delivery] = []

    func put(_ delivery: Delivery) { items.append(delivery) }

    func take() -> Delivery? { items.isEmpty ? nil : items.removeFirst() }

    /// The next delivery, or nil if none arrives in time.
    func next(within seconds: Double = 10) async -> Delivery? {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if let delivery = take() { return delivery }
            try? await Task.sleep(for: .milliseconds(10))
        }
        return nil
    }

    nonisolated func fill(from stream: AsyncStream<Delivery>) -> Task<Void, Never> {
        Task { for await delivery in stream { await self.put(delivery) } }
    }
}

/// Polls `condition` until it holds or `seconds` pass.
private func eventually(within seconds: Double = 30, _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return await condition()
}

/// The exit status of the restart script, once it has returned.
private actor RestartState {
    private(set) var status: Int32?

    func finish(_ status: Int32) { self.status = status }
}
