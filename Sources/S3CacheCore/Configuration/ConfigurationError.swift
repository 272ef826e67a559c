/// A configuration value that cannot be used; startup stops with this message.
public struct ConfigurationError: Error, CustomStringConvertible, Sendable, Equatable {
    /// The variable at fault, e.g. `FCGI_THREADS`.
    public var variable: String
    /// The rejected value, already redacted when the variable holds a secret.
    public var value: String
    /// What a valid value looks like.
    public var reason: String

    public init(variable: String, value: String, reason: String) {
        self.variable = variable
        self.value = Self.isSecret(variable) ? "<redacted>" : value
        self.reason = reason
    }

    /// Variables whose values must never appear in a message or a log.
    static func isSecret(_ variable: String) -> Bool {
        variable.contains("SECRET") || variable.contains("PASSWORD") || variable.contains("TOKEN")
    }

    public var description: String { "\(variable)=\"\(value)\" is invalid: \(reason)" }
}
