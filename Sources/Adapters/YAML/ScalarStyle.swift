/// How a scalar was written. Callers read plain `""`, `~` and `null` as null; a quoted
/// `'null'` is a string.
public enum ScalarStyle: Sendable {
    case plain, singleQuoted, doubleQuoted, literal, folded
}
