import Foundation
FileHandle.standardError.write("rulecheck: not built yet\n".data(using: .utf8)!)
exit(1)
