/// A bucket event notification as S3, MinIO and Ceph RGW deliver it, read into what the cache
/// must forget.
///
/// All three send S3's event structure, `Records[].eventName`, `.s3.bucket.name` and
/// `.s3.object.key`; AWS wraps it in an SNS envelope when it comes over HTTP(S) (`Type`,
/// with the event JSON as the `Message` string). The object key is URL-encoded in the form
/// style (`+` for a space), as AWS documents it; the key as written is tried as well, so that a
/// sender which does not encode it can never leave a stale copy behind (forgetting one key too
/// many costs one download).
enum BucketNotification: Equatable {
    /// Object events (none for S3's `s3:TestEvent`).
    case events([BucketEvent])
    /// SNS asks the subscriber to confirm by visiting `subscribeURL`.
    case subscriptionConfirmation(subscribeURL: String, topicARN: String)
    /// An SNS message that needs nothing from us (`UnsubscribeConfirmation`).
    case other(type: String)

    /// Why a body was refused; the message names the part, never echoes the body.
    struct Invalid: Error, Equatable, CustomStringConvertible {
        var description: String
    }

    static func read(_ body: [UInt8]) throws(Invalid) -> BucketNotification {
        let document = try json(body)
        guard case .object = document else { throw Invalid(description: "the body is not a JSON object") }
        if let type = document["Type"] {
            guard let type = type.string else { throw Invalid(description: "SNS Type is not a string") }
            switch type {
            case "Notification":
                guard let message = document["Message"]?.string else {
                    throw Invalid(description: "SNS Notification without a Message string")
                }
                let event = try json(Array(message.utf8))
                return .events(try events(event))
            case "SubscriptionConfirmation":
                guard let url = document["SubscribeURL"]?.string, let topic = document["TopicArn"]?.string else {
                    throw Invalid(description: "SNS SubscriptionConfirmation without SubscribeURL and TopicArn")
                }
                return .subscriptionConfirmation(subscribeURL: url, topicARN: topic)
            default:
                return .other(type: type)
            }
        }
        return .events(try events(document))
    }

    private static func json(_ bytes: [UInt8]) throws(Invalid) -> JSONValue {
        do {
            return try JSONReader.parse(bytes)
        } catch {
            throw Invalid(description: "malformed JSON: \(error)")
        }
    }

    /// `Records[]`, or nothing for S3's test event (`{"Service":"Amazon S3","Event":"s3:TestEvent",…}`).
    private static func events(_ document: JSONValue) throws(Invalid) -> [BucketEvent] {
        if document["Records"] == nil, document["Event"]?.string == "s3:TestEvent" { return [] }
        guard let records = document["Records"]?.array else { throw Invalid(description: "no Records array") }
        var events: [BucketEvent] = []
        for (index, record) in records.enumerated() {
            guard let name = record["eventName"]?.string, let s3 = record["s3"],
                  let bucket = s3["bucket"]?["name"]?.string, let key = s3["object"]?["key"]?.string
            else {
                throw Invalid(description: "record \(index) lacks eventName, s3.bucket.name or s3.object.key")
            }
            events.append(BucketEvent(name: name, bucket: bucket, encodedKey: key))
        }
        return events
    }
}

/// One object event.
struct BucketEvent: Equatable {
    /// `ObjectCreated:Put`, `s3:ObjectRemoved:Delete` (MinIO prefixes `s3:`), …
    var name: String
    var bucket: String
    /// The key as the event carries it (URL-encoded by AWS and MinIO).
    var encodedKey: String

    /// Whether the event means the object's bytes changed or it is gone: created (put, post,
    /// copy, multipart), removed (deleted, delete marker), expired by a lifecycle rule, or
    /// replaced by a multisite sync (Ceph's `ObjectSynced:*`). Tagging, ACL, restore and
    /// replication-status events leave the bytes as they are.
    var changesObject: Bool {
        let name = name.hasPrefix("s3:") ? name.dropFirst(3) : Substring(name)
        return ["ObjectCreated:", "ObjectRemoved:", "LifecycleExpiration:", "ObjectLifecycle:Expiration", "ObjectSynced:"]
            .contains { name.hasPrefix($0) }
    }

    /// The keys to forget: the decoded key, and the key as written when that differs.
    var keys: [String] {
        guard let decoded = Self.formDecoded(encodedKey), decoded != encodedKey else { return [encodedKey] }
        return [decoded, encodedKey]
    }

    /// `+` as a space and `%XX` as a byte; nil when an escape is malformed or the result is not UTF-8.
    static func formDecoded(_ text: String) -> String? {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "%") }) else { return text }
        let spaced = String(decoding: text.utf8.map { $0 == UInt8(ascii: "+") ? UInt8(ascii: " ") : $0 }, as: UTF8.self)
        return PercentDecoding.decodeText(Substring(spaced))
    }
}
