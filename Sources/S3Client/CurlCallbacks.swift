import CCurl

/// The C entry points libcurl calls during `curl_easy_perform`.
///
/// Each one recovers the `TransferContext` from the `CURLOPT_*DATA` pointer (passed
/// unretained: the context outlives the transfer) and returns libcurl's abort value
/// when the context says stop. None of them can throw.
enum CurlCallbacks {
    static let header: curl_write_callback = { buffer, size, count, userdata in
        let length = size * count
        let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
        return context.receiveHeaderLine(UnsafeRawBufferPointer(start: buffer, count: length)) ? length : 0
    }

    static let write: curl_write_callback = { buffer, size, count, userdata in
        let length = size * count
        let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
        return context.receiveBody(UnsafeRawBufferPointer(start: buffer, count: length)) ? length : 0
    }

    static let read: curl_read_callback = { buffer, size, count, userdata in
        let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
        let target = UnsafeMutableRawBufferPointer(start: buffer, count: size * count)
        return context.supplyBody(into: target) ?? s3cache_curl_readfunc_abort
    }

    static let progress: curl_xferinfo_callback = { userdata, _, downloaded, _, uploaded in
        let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
        return context.progress(downloaded: Int64(downloaded), uploaded: Int64(uploaded)) ? 0 : 1
    }

    static let seek: curl_seek_callback = { userdata, offset, origin in
        let context = Unmanaged<TransferContext>.fromOpaque(userdata!).takeUnretainedValue()
        let allowed = origin == SEEK_SET && context.canRewind(to: Int64(offset))
        return allowed ? Int32(CURL_SEEKFUNC_OK) : Int32(CURL_SEEKFUNC_CANTSEEK)
    }
}
