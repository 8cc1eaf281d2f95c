//! The history store's value decoders (transfer records, id index entries, epoch runs and
//! marks) over arbitrary bytes: see `huifu_store::encoding::check_decoders`.

pub fn run(data: &[u8]) {
    huifu_store::encoding::check_decoders(data);
}
