/// Names of a sweep's queues and shared-state keys. Everything is namespaced by the sweep id (a UUID kept
/// in the store), so sweeps sharing a broker or a shared state never see each other's state. Queue names also
/// carry the sweep's name (`cs.<name>.<id>.…`), so an autoscaler can count one deployment's queues with a
/// pattern fixed before the id is known (k8s/autoscaling.yaml).
public struct ClusterNames: Sendable {
    public let sweepID: String
    /// The config's sweep name as it appears in queue names: lower case, `a-z`, `0-9` and `-` only, at most
    /// 64 characters.
    public let queueName: String

    public init(sweepID: String, sweepName: String) {
        self.sweepID = sweepID
        self.queueName = Self.queueSafe(sweepName)
    }

    /// `name` lower-cased, every other character than `a-z`, `0-9` and `-` replaced by `-`, cut to 64.
    public static func queueSafe(_ name: String) -> String {
        String(
            name.lowercased().unicodeScalars.map { scalar in
                ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || scalar == "-"
                    ? Character(scalar) : "-"
            }
            .prefix(64))
    }

    /// The start of every queue name of the sweep.
    private var queuePrefix: String { "cs.\(queueName).\(sweepID)" }

    /// Where the coordinator tells workers which sweep id a config name currently runs under.
    public static func sweepKey(configName: String) -> String { "cs:sweep:\(configName)" }

    /// The queue of a stage's tasks that first call `model` (one queue per stage and model, so a
    /// saturated model's tasks never hold up another model's).
    public func taskQueue(stage: Stage, model: String) -> String { "\(queuePrefix).\(stage.rawValue).\(model)" }

    public func taskQueue(for task: PipelineTask, config: SweepConfig) -> String {
        taskQueue(stage: task.stage, model: task.firstModel(config))
    }

    /// The stage and model a task queue's name carries (labels for metrics and logs), or nil for
    /// a queue that is not one of this sweep's task queues.
    public func stageAndModel(ofQueue queue: String) -> (stage: String, model: String)? {
        let prefix = "\(queuePrefix)."
        guard queue.hasPrefix(prefix) else { return nil }
        let rest = queue.dropFirst(prefix.count)
        guard let dot = rest.firstIndex(of: ".") else { return nil }
        return (String(rest[..<dot]), String(rest[rest.index(after: dot)...]))
    }

    /// Failed tasks wait here for their per-message TTL, then dead-letter back to `queue`.
    public func retryQueue(of queue: String) -> String { "\(queue).retry" }

    /// Results, outcomes and task registrations for the aggregator.
    public var results: String { "\(queuePrefix).results" }

    /// Messages that could not be decoded or failed too often, kept for inspection.
    public var dead: String { "\(queuePrefix).dead" }

    /// Where task queues dead-letter: the aggregator records each task found here as dead (the broker
    /// dead-letters by itself at its delivery limit, and no worker reports that) and moves the message on
    /// to `dead`.
    public var deadTasks: String { "\(queuePrefix).dead-tasks" }

    /// Every task queue a config can use, in a stable order.
    public func taskQueues(_ config: SweepConfig) -> [String] {
        var queues: [String] = []
        for stage in Stage.tasks {
            for model in stage.queueModels(config) { queues.append(taskQueue(stage: stage, model: model)) }
        }
        return queues
    }

    /// Every queue of the sweep with its dead-lettering: task queues dead-letter to `deadTasks` (and from
    /// there to `dead`), the results queue to `dead`, retry queues back to their task queue.
    public func queueSpecs(_ config: SweepConfig) -> [QueueSpec] {
        var specs = [QueueSpec(name: dead), QueueSpec(name: deadTasks), QueueSpec(name: results, deadLetterTo: dead)]
        for queue in taskQueues(config) {
            specs.append(QueueSpec(name: queue, deadLetterTo: deadTasks))
            specs.append(QueueSpec(name: retryQueue(of: queue), deadLetterTo: queue))
        }
        return specs
    }

    /// The current coordinator run's id. `done` markers belong to one run, so a rerun (after the
    /// broker lost results that were never stored, say) does every task it needs again.
    public var runKey: String { "cs:\(sweepID):run" }
    /// Set by the first worker whose provider refused every call of a model (401, 403, an unknown model, a
    /// refused parameter): the line naming it. The coordinator stops the sweep on it and clears it when
    /// started again.
    public var stopKey: String { "cs:\(sweepID):stopped" }

    /// Set once a task's result is published in coordinator run `run`, so a redelivered copy is
    /// acknowledged without work.
    public func doneKey(taskID: String, run: String) -> String { "cs:\(sweepID):done:\(run):\(taskID)" }

    /// Set by the coordinator when the sweep has nothing pending: workers stop consuming, and the coordinator
    /// then deletes the task queues. A rerun of the coordinator clears it.
    public var finishedKey: String { "cs:\(sweepID):finished" }

    /// The task queues and their retry queues: what a finished sweep deletes (the results and dead-letter
    /// queues stay, for the aggregator and for operators).
    public func workQueues(_ config: SweepConfig) -> [String] {
        taskQueues(config).flatMap { [$0, retryQueue(of: $0)] }
    }

    /// The aggregator's live rankings (JSON), for `status`.
    public var liveKey: String { "cs:\(sweepID):live" }

    /// The running coordinator's lease (a `Lease`): a second coordinator of the sweep refuses to start.
    public var coordinatorKey: String { "cs:\(sweepID):coordinator" }

    /// How many of a task's holders died in their own handling of it (see `DeliveryCount`).
    public func deathsKey(taskID: String) -> String { "cs:\(sweepID):deaths:\(taskID)" }

    /// How often a task came back redelivered, whatever its holder died of (see `DeliveryCount`).
    public func redeliveriesKey(taskID: String) -> String { "cs:\(sweepID):redeliveries:\(taskID)" }
}
