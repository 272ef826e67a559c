@testable import S3CacheCore
import Testing

@Suite struct AccessRulesTests {
    @Test func defaultRulesMatchTheSeed() throws {
        let rules = try AccessRules(parsing: "public:read,private:all,local:all")
        #expect(rules.permits(.get, on: "public"))
        #expect(rules.permits(.head, on: "public"))
        #expect(!rules.permits(.put, on: "public"))
        #expect(!rules.permits(.delete, on: "public"))
        for method in ObjectMethod.allCases {
            #expect(rules.permits(method, on: "private"))
            #expect(!rules.permits(method, on: "unlisted"), "unlisted bucket must refuse \(method)")
        }
    }

    @Test func writeAllowsReadsAndWrites() throws {
        let rules = try AccessRules(parsing: " uploads : write ")
        for method in ObjectMethod.allCases { #expect(rules.permits(method, on: "uploads")) }
    }

    @Test(arguments: ["", "public", "public:admin", "Public:read", "a:read", "public:read,public:all", "public:read:x", ","])
    func malformedRulesAreRefused(text: String) {
        #expect(throws: AccessRules.ParseError.self) { try AccessRules(parsing: text) }
    }

    @Test func descriptionIsSortedAndStable() throws {
        #expect(try AccessRules(parsing: "zeta:read,alpha:all").description == "alpha:all,zeta:read")
    }
}
