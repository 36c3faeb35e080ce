import Foundation
FileHandle.standardError.write("config-sender: not built yet\n".data(using: .utf8)!)
exit(1)
