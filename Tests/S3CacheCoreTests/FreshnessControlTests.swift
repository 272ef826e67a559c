import ObjectCache
@testable import S3CacheCore
import Testing

@Suite struct CacheControlTests {
    private let now: Int64 = 1_800_000_000

    @Test func directivesDecideFreshness() {
        #expect(CacheControl("max-age=60").freshness(expires: nil, now: now) == Freshness(ttl: 60))
        #expect(CacheControl("max-age=60, s-maxage=5").freshness(expires: nil, now: now) == Freshness(ttl: 5))
        #expect(CacheControl("public, MAX-AGE=\"30\"").freshness(expires: nil, now: now) == Freshness(ttl: 30))
        #expect(CacheControl("no-store").freshness(expires: nil, now: now) == nil)
        #expect(CacheControl("private, max-age=600").freshness(expires: nil, now: now) == nil)
        #expect(CacheControl("no-cache").freshness(expires: nil, now: now) == Freshness(ttl: 0, staleWhileRevalidate: 0))
        #expect(CacheControl("max-age=9, must-revalidate").freshness(expires: nil, now: now) == Freshness(ttl: 9, staleWhileRevalidate: 0))
        #expect(CacheControl("max-age=9, stale-while-revalidate=30").freshness(expires: nil, now: now)
            == Freshness(ttl: 9, staleWhileRevalidate: 30))
        #expect(CacheControl(nil).freshness(expires: nil, now: now) == Freshness())
        #expect(CacheControl("public").freshness(expires: nil, now: now) == Freshness())
    }

    @Test func malformedValuesAreReadCautiously() {
        #expect(CacheControl("max-age=soon").freshness(expires: nil, now: now) == Freshness(ttl: 0))
        #expect(CacheControl("max-age=").freshness(expires: nil, now: now) == Freshness(ttl: 0))
        #expect(CacheControl("max-age=99999999999999999999999").freshness(expires: nil, now: now)
            == Freshness(ttl: Double(CacheControl.maxDeltaSeconds)))
        #expect(CacheControl("no-cache=\"Set-Cookie, X\", max-age=5").noCache)
        #expect(CacheControl(",,, =x, max-age=7 ,").freshness(expires: nil, now: now) == Freshness(ttl: 7))
    }

    @Test func expiresCountsOnlyWithoutMaxAge() {
        let inAMinute = "Fri, 15 Jan 2027 08:01:00 GMT"
        #expect(CacheControl(nil).freshness(expires: inAMinute, now: now) == Freshness(ttl: 60))
        #expect(CacheControl("max-age=5").freshness(expires: inAMinute, now: now) == Freshness(ttl: 5))
        #expect(CacheControl(nil).freshness(expires: "0", now: now) == Freshness(ttl: 0))
        #expect(CacheControl(nil).freshness(expires: "Fri, 15 Jan 2027 07:59:00 GMT", now: now) == Freshness(ttl: 0))
    }
}

@Suite struct JSONReaderTests {
    private func parse(_ text: String) throws -> JSONValue { try JSONReader.parse(Array(text.utf8)) }

    @Test func readsDocuments() throws {
        let value = try parse(#" {"a": [1, -2.5e3, true, false, null, "x\u00e9\ud83d\ude00\n"], "b": {}} "#)
        #expect(value["a"] == .array([.number("1"), .number("-2.5e3"), .bool(true), .bool(false), .null, .string("x\u{e9}\u{1F600}\n")]))
        #expect(value["b"] == .object([]))
        #expect(try parse("\u{feff}[]") == .array([]))
    }

    @Test func refusesWhatIsNotJSON() {
        for text in ["", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "\"\\ud800\"", "\"\\udc00x\"", "\"a\u{01}\"", "tru", "[1] x",
                     "{'a':1}", "\"\\x\"", "NaN", "{\"a\" 1}"] {
            #expect(throws: JSONReadError.self, "\(text.debugDescription) was accepted") { try parse(text) }
        }
        #expect(throws: JSONReadError.self) { try JSONReader.parse(Array(String(repeating: "[", count: 100).utf8)) }
        #expect(throws: JSONReadError.self) { try JSONReader.parse([0x22, 0xff, 0x22]) }
    }
}

@Suite struct BucketNotificationTests {
    private func read(_ text: String) throws -> BucketNotification { try BucketNotification.read(Array(text.utf8)) }

    private func record(_ name: String, _ bucket: String, _ key: String) -> String {
        #"{"eventName":"\#(name)","s3":{"bucket":{"name":"\#(bucket)"},"object":{"key":"\#(key)"}}}"#
    }

    @Test func recordsBecomeEvents() throws {
        let body = #"{"Records":[\#(record("ObjectCreated:Put", "public", "a/red+flower.jpg")),\#(record("s3:ObjectRemoved:Delete", "b", "x%2Fy"))]}"#
        guard case let .events(events) = try read(body) else {
            Issue.record("expected events")
            return
        }
        #expect(events.count == 2)
        #expect(events[0].keys == ["a/red flower.jpg", "a/red+flower.jpg"])
        #expect(events[1].keys == ["x/y", "x%2Fy"])
        #expect(events.allSatisfy { $0.changesObject })
    }

    @Test func eventNamesThatChangeAnObject() {
        func changes(_ name: String) -> Bool { BucketEvent(name: name, bucket: "b", encodedKey: "k").changesObject }
        for name in ["ObjectCreated:Put", "s3:ObjectCreated:CompleteMultipartUpload", "ObjectRemoved:DeleteMarkerCreated",
                     "LifecycleExpiration:Delete", "ObjectLifecycle:Expiration:Current", "ObjectSynced:Create"] {
            #expect(changes(name), "\(name)")
        }
        for name in ["ObjectTagging:Put", "s3:ObjectAccessed:Get", "ObjectAcl:Put", "ObjectRestore:Completed", "Replication:OperationFailedReplication", ""] {
            #expect(!changes(name), "\(name)")
        }
    }

    @Test func snsEnvelopesAreOpened() throws {
        let inner = #"{"Records":[\#(record("ObjectCreated:Put", "public", "k"))]}"#
        let envelope = JSON.object([("Type", .string("Notification")), ("Message", .string(inner))])
        guard case let .events(events) = try read(envelope) else {
            Issue.record("expected the S3 event inside the SNS Message")
            return
        }
        #expect(events == [BucketEvent(name: "ObjectCreated:Put", bucket: "public", encodedKey: "k")])
        let confirmation = JSON.object([
            ("Type", .string("SubscriptionConfirmation")), ("TopicArn", .string("arn:aws:sns:us-east-1:1:t")),
            ("SubscribeURL", .string("https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x")),
        ])
        #expect(try read(confirmation) == .subscriptionConfirmation(
            subscribeURL: "https://sns.us-east-1.amazonaws.com/?Action=ConfirmSubscription&Token=x", topicARN: "arn:aws:sns:us-east-1:1:t"))
        #expect(try read(#"{"Service":"Amazon S3","Event":"s3:TestEvent"}"#) == .events([]))
        #expect(try read(#"{"Type":"UnsubscribeConfirmation"}"#) == .other(type: "UnsubscribeConfirmation"))
    }

    @Test func malformedNotificationsAreRefused() {
        for text in ["[]", "{}", #"{"Records":{}}"#, #"{"Records":[{"eventName":"ObjectCreated:Put"}]}"#,
                     #"{"Type":"Notification","Message":"not json"}"#, #"{"Type":1}"#, "{\"Records\":["] {
            #expect(throws: BucketNotification.Invalid.self, "\(text) was accepted") { try read(text) }
        }
    }

    @Test func onlySNSOwnConfirmationURLsAreVisited() {
        let good = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=a&Token=b"
        #expect(NotificationEndpoint.isSNSConfirmation(good, extraEndpoints: []))
        #expect(NotificationEndpoint.isSNSConfirmation(
            "https://sns.cn-north-1.amazonaws.com.cn/?Action=ConfirmSubscription&Token=b", extraEndpoints: []))
        for bad in ["http://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription", "https://sns.eu-west-1.amazonaws.com.evil.net/?Action=ConfirmSubscription",
                    "https://evil.net/?Action=ConfirmSubscription&x=sns.us-east-1.amazonaws.com", "https://sns.eu-west-1.amazonaws.com/?Action=Publish",
                    "https://sns.eu-west-1.amazonaws.com@evil.net/?Action=ConfirmSubscription", "https://x.sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
                    "https://sns.eu_west.amazonaws.com/?Action=ConfirmSubscription", "http://127.0.0.1:9/?Action=ConfirmSubscription"] {
            #expect(!NotificationEndpoint.isSNSConfirmation(bad, extraEndpoints: []), "\(bad)")
        }
        #expect(NotificationEndpoint.isSNSConfirmation("http://127.0.0.1:9/sns?Action=ConfirmSubscription", extraEndpoints: ["http://127.0.0.1:9/"]))
    }

    @Test func tokensCompareWhole() {
        #expect(NotificationEndpoint.matches("0123456789abcdef", "0123456789abcdef"))
        #expect(!NotificationEndpoint.matches("0123456789abcde", "0123456789abcdef"))
        #expect(!NotificationEndpoint.matches("", "0123456789abcdef"))
    }
}
